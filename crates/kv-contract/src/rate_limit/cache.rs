//! The opt-in local cache of blocked buckets: once the store has said "denied, retry in
//! N ms", further requests for that bucket within N ms are denied here, without a round
//! trip, so a flood against a blocked key costs the server nothing.
//!
//! It is only ever more permissive than the store in one way, documented on
//! `RateLimiterOptionsBuilder::blocked_cache`: a `reset` made through *another* limiter
//! is not seen until the cached retry time passes. Entries use this process's monotonic
//! clock, and their durations come from the store's decision, so app-clock skew does not
//! matter. The cache is bounded; when it is full of live entries, new blocked buckets
//! are simply not cached (they cost a round trip, as without the cache).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::rate_limit::decision::{DecisionSource, RateLimitDecision};

/// One blocked bucket under one rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    key: Vec<u8>,
    window_ms: u64,
    limit: u64,
}

#[derive(Debug, Clone, Copy)]
struct Blocked {
    /// Any request for at least `cost` units is denied until `until`.
    cost: u64,
    until: Instant,
    reset_at: Instant,
}

/// Buckets known to be blocked, with the instant each unblocks.
#[derive(Debug)]
pub(crate) struct BlockedCache {
    capacity: usize,
    slots: Mutex<HashMap<Slot, Blocked>>,
}

fn ms_until(at: Instant, now: Instant) -> u64 {
    let left = at.saturating_duration_since(now);
    // Round up: never report 0 ms for a bucket still blocked.
    left.as_millis() as u64 + u64::from(left.subsec_nanos() % 1_000_000 != 0)
}

impl BlockedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        BlockedCache {
            capacity,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Slot, Blocked>> {
        // Entries are plain values replaced whole; a poisoned lock holds nothing torn.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached denial for `cost` units, if the bucket is known to be blocked for it.
    /// A denial for `cost` units implies one for more units (every algorithm is monotone
    /// in the cost), never for fewer.
    pub(crate) fn lookup(
        &self,
        key: &[u8],
        window_ms: u64,
        limit: u64,
        capacity: u64,
        cost: u64,
    ) -> Option<RateLimitDecision> {
        let slot = Slot {
            key: key.to_vec(),
            window_ms,
            limit,
        };
        let now = Instant::now();
        let mut slots = self.slots();
        let entry = *slots.get(&slot)?;
        if entry.until <= now {
            slots.remove(&slot);
            return None;
        }
        if cost < entry.cost {
            return None;
        }
        Some(RateLimitDecision {
            allowed: false,
            limit: capacity,
            remaining: 0,
            retry_after_ms: ms_until(entry.until, now),
            reset_after_ms: ms_until(entry.reset_at, now),
            source: DecisionSource::BlockedCache,
        })
    }

    /// Records the store's decision: a denial blocks the bucket until its retry time; an
    /// admission clears what was cached for it.
    pub(crate) fn record(
        &self,
        key: &[u8],
        window_ms: u64,
        limit: u64,
        cost: u64,
        decision: &RateLimitDecision,
    ) {
        let slot = Slot {
            key: key.to_vec(),
            window_ms,
            limit,
        };
        let mut slots = self.slots();
        if decision.allowed || decision.retry_after_ms == 0 {
            slots.remove(&slot);
            return;
        }
        let now = Instant::now();
        if slots.len() >= self.capacity && !slots.contains_key(&slot) {
            slots.retain(|_, b| b.until > now);
            if slots.len() >= self.capacity {
                return;
            }
        }
        slots.insert(
            slot,
            Blocked {
                cost,
                until: now + Duration::from_millis(decision.retry_after_ms),
                reset_at: now + Duration::from_millis(decision.reset_after_ms),
            },
        );
    }

    /// Forgets every entry of a bucket (after `reset`).
    pub(crate) fn forget(&self, key: &[u8]) {
        self.slots().retain(|slot, _| slot.key != key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(retry: u64) -> RateLimitDecision {
        RateLimitDecision {
            allowed: false,
            limit: 3,
            remaining: 0,
            retry_after_ms: retry,
            reset_after_ms: retry,
            source: DecisionSource::Store,
        }
    }

    #[test]
    fn blocked_until_retry_then_forgotten() {
        let cache = BlockedCache::new(10);
        assert_eq!(cache.lookup(b"k", 1000, 3, 3, 1), None);
        cache.record(b"k", 1000, 3, 2, &denied(60_000));
        let hit = cache.lookup(b"k", 1000, 3, 3, 2).expect("cached");
        assert_eq!(hit.source, DecisionSource::BlockedCache);
        assert!(!hit.allowed && hit.retry_after_ms > 59_000 && hit.retry_after_ms <= 60_000);
        assert_eq!(
            cache.lookup(b"k", 1000, 3, 3, 1),
            None,
            "fewer units may fit"
        );
        assert_eq!(cache.lookup(b"k", 2000, 3, 3, 2), None, "another rule");
        cache.forget(b"k");
        assert_eq!(cache.lookup(b"k", 1000, 3, 3, 2), None);
        cache.record(b"k", 1000, 3, 1, &denied(1));
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(cache.lookup(b"k", 1000, 3, 3, 1), None, "expired");
        assert_eq!(cache.len(), 0, "expired entry removed on lookup");
    }

    #[test]
    fn admission_clears_and_capacity_bounds() {
        let cache = BlockedCache::new(2);
        cache.record(b"a", 1000, 3, 1, &denied(60_000));
        cache.record(b"b", 1000, 3, 1, &denied(60_000));
        cache.record(b"c", 1000, 3, 1, &denied(60_000));
        assert_eq!(cache.len(), 2, "full of live entries: c is not cached");
        assert!(cache.lookup(b"c", 1000, 3, 3, 1).is_none());
        let allowed = RateLimitDecision {
            allowed: true,
            ..denied(0)
        };
        cache.record(b"a", 1000, 3, 1, &allowed);
        assert!(cache.lookup(b"a", 1000, 3, 3, 1).is_none());
        assert!(cache.lookup(b"b", 1000, 3, 3, 1).is_some());
    }
}
