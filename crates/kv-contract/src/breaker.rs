//! A circuit breaker for calls to Redis: after N consecutive unavailability errors, stop
//! calling for a cool-down, then let one probe through; the probe's outcome closes the
//! breaker or opens it again.
//!
//! One [`CircuitBreaker`] stands for one Redis deployment: clone it into every wrapper
//! (storage, lock, rate limiter, session index) built on the same connection, so they
//! trip and recover together and their counters add up in one [`BreakerStats`]. What a
//! wrapper answers while the breaker is open is the wrapper's policy
//! ([`crate::resilient::OnUnavailable`]); the breaker only decides whether to call.
//!
//! Only errors for which [`KvError::is_unavailable`] is true (connection failures,
//! timeouts, `LOADING`, `MASTERDOWN`, ...) count as failures. A `WRONGTYPE` or a script
//! error means the server answered: it resets the count like a success.
//!
//! ```text
//!            N consecutive failures               cool-down elapsed: next call is the probe
//!  Closed ─────────────────────────────▶ Open ─────────────────────────────▶ HalfOpen
//!    ▲                                    ▲                                     │
//!    │            probe succeeds          │          probe fails                │
//!    └────────────────────────────────────┼─────────────────────────────────────┤
//!                                         └─────────────────────────────────────┘
//! ```

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{ErrorKind, KvError, KvResult};
use crate::memory::Clock;

/// When a [`CircuitBreaker`] opens and for how long. Build with
/// [`BreakerOptions::builder`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOptions {
    /// Consecutive unavailability errors that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before letting a probe through.
    pub cool_down: Duration,
}

impl BreakerOptions {
    /// Default threshold: 5 consecutive failures (one blip does not open it).
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
    /// Default cool-down: 2 s (a restarting server is usually back within seconds).
    pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(2);
    /// The largest cool-down accepted (one hour).
    pub const MAX_COOL_DOWN: Duration = Duration::from_secs(3600);

    /// Starts options with the defaults.
    pub fn builder() -> BreakerOptionsBuilder {
        BreakerOptionsBuilder {
            options: BreakerOptions::default(),
        }
    }
}

impl Default for BreakerOptions {
    fn default() -> Self {
        BreakerOptions {
            failure_threshold: Self::DEFAULT_FAILURE_THRESHOLD,
            cool_down: Self::DEFAULT_COOL_DOWN,
        }
    }
}

/// Builder for [`BreakerOptions`].
#[derive(Debug, Clone)]
pub struct BreakerOptionsBuilder {
    options: BreakerOptions,
}

impl BreakerOptionsBuilder {
    /// Sets the number of consecutive failures that opens the breaker (at least 1).
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.options.failure_threshold = n;
        self
    }

    /// Sets the cool-down (above zero, at most one hour).
    pub fn cool_down(mut self, cool_down: Duration) -> Self {
        self.options.cool_down = cool_down;
        self
    }

    /// Validates and builds the options.
    pub fn build(self) -> KvResult<BreakerOptions> {
        let o = self.options;
        if o.failure_threshold == 0 {
            return Err(KvError::invalid_config(
                "breaker failure threshold 0 is invalid: it must be at least 1",
            ));
        }
        if o.cool_down.is_zero() || o.cool_down > BreakerOptions::MAX_COOL_DOWN {
            return Err(KvError::invalid_config(format!(
                "breaker cool-down {:?} is out of range: it must be above zero and at most {:?}",
                o.cool_down,
                BreakerOptions::MAX_COOL_DOWN
            )));
        }
        Ok(o)
    }
}

/// Where a breaker stands.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go to the server.
    Closed,
    /// Calls are refused until the cool-down has elapsed.
    Open,
    /// One probe call is in flight; other calls are refused until it ends.
    HalfOpen,
}

/// A snapshot of a breaker's state and counters (all counts since it was created).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerStats {
    /// The state at the time of the snapshot.
    pub state: BreakerState,
    /// Calls let through to the server (probes included).
    pub calls: u64,
    /// Of those, calls that ended in an unavailability error.
    pub failures: u64,
    /// Calls refused without contacting the server because the breaker was open.
    pub rejected: u64,
    /// Transitions to open (from closed, or from half-open after a failed probe).
    pub opened: u64,
    /// Transitions from half-open to closed (a probe succeeded).
    pub closed: u64,
    /// Probe calls let through in half-open.
    pub probes: u64,
    /// Degraded answers served as a miss or a dropped write
    /// ([`OnUnavailable::Skip`](crate::resilient::OnUnavailable::Skip)).
    pub skipped: u64,
    /// Degraded answers served by a fallback store
    /// ([`OnUnavailable::Fallback`](crate::resilient::OnUnavailable::Fallback)).
    pub fallbacks: u64,
}

/// The `source()` of the error a breaker returns while open; see [`is_circuit_open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen {
    /// Time left before the next probe may go through.
    pub retry_in: Duration,
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker open; next probe in {:?}", self.retry_in)
    }
}

impl std::error::Error for CircuitOpen {}

/// True when `e` was returned by an open breaker without contacting the server (it is
/// also [`ErrorKind::Unavailable`]).
pub fn is_circuit_open(e: &KvError) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<CircuitOpen>())
}

#[derive(Debug)]
struct Machine {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at_ms: u64,
    probe_in_flight: bool,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
    probes: AtomicU64,
    skipped: AtomicU64,
    fallbacks: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
struct Inner {
    options: BreakerOptions,
    clock: Arc<dyn Clock>,
    machine: Mutex<Machine>,
    counters: Counters,
}

/// A monotonic clock for cool-downs: wall-clock jumps must not reopen or stall a breaker.
#[derive(Debug)]
struct MonotonicClock(Instant);

impl Clock for MonotonicClock {
    fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// A circuit breaker; clones share one state. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker with `options`, timed by a monotonic clock.
    pub fn new(options: BreakerOptions) -> Self {
        Self::with_clock(options, Arc::new(MonotonicClock(Instant::now())))
    }

    /// A closed breaker timed by `clock` (a
    /// [`ManualClock`](crate::memory::ManualClock) in tests).
    pub fn with_clock(options: BreakerOptions, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            inner: Arc::new(Inner {
                options,
                clock,
                machine: Mutex::new(Machine {
                    state: BreakerState::Closed,
                    consecutive_failures: 0,
                    opened_at_ms: 0,
                    probe_in_flight: false,
                }),
                counters: Counters::default(),
            }),
        }
    }

    /// The options.
    pub fn options(&self) -> &BreakerOptions {
        &self.inner.options
    }

    fn machine(&self) -> MutexGuard<'_, Machine> {
        // Every update leaves the machine consistent before anything can panic.
        self.inner.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state. An open breaker whose cool-down has elapsed still reads
    /// `Open` until a call is let through as the probe.
    pub fn state(&self) -> BreakerState {
        self.machine().state
    }

    /// The state and every counter.
    pub fn stats(&self) -> BreakerStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BreakerStats {
            state: self.state(),
            calls: get(&c.calls),
            failures: get(&c.failures),
            rejected: get(&c.rejected),
            opened: get(&c.opened),
            closed: get(&c.closed),
            probes: get(&c.probes),
            skipped: get(&c.skipped),
            fallbacks: get(&c.fallbacks),
        }
    }

    /// Asks to call the server. A [`Permit`] when the breaker is closed, or when it is
    /// open, its cool-down has elapsed and no other probe is in flight (the permit is
    /// then the probe); otherwise the open-circuit error ([`ErrorKind::Unavailable`],
    /// [`is_circuit_open`]), without any I/O.
    pub fn try_acquire(&self) -> KvResult<Permit> {
        let mut m = self.machine();
        let counters = &self.inner.counters;
        let probe = match m.state {
            BreakerState::Closed => false,
            BreakerState::Open | BreakerState::HalfOpen => {
                let now = self.inner.clock.now_ms();
                let reopen_at = m
                    .opened_at_ms
                    .saturating_add(self.inner.options.cool_down.as_millis() as u64);
                if m.probe_in_flight || now < reopen_at {
                    bump(&counters.rejected);
                    let retry_in = Duration::from_millis(reopen_at.saturating_sub(now));
                    return Err(KvError::with_source(
                        ErrorKind::Unavailable,
                        format!(
                            "not calling the server: circuit breaker open after {} consecutive \
                             unavailability errors (next probe in {retry_in:?})",
                            self.inner.options.failure_threshold
                        ),
                        CircuitOpen { retry_in },
                    ));
                }
                m.state = BreakerState::HalfOpen;
                m.probe_in_flight = true;
                bump(&counters.probes);
                tracing::info!("circuit breaker half-open: probing the server");
                crate::observe::breaker_counted("half_open");
                true
            }
        };
        bump(&counters.calls);
        Ok(Permit {
            breaker: self.clone(),
            probe,
            recorded: false,
        })
    }

    /// Runs `op` through the breaker: refused with the open-circuit error while open,
    /// otherwise called and its outcome recorded.
    pub async fn call<T, F, Fut>(&self, op: F) -> KvResult<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = KvResult<T>>,
    {
        let permit = self.try_acquire()?;
        let result = op().await;
        permit.record(&result);
        result
    }

    /// Counts a degraded answer served as a miss or a dropped write.
    pub fn note_skipped(&self) {
        bump(&self.inner.counters.skipped);
    }

    /// Counts a degraded answer served by a fallback store.
    pub fn note_fallback(&self) {
        bump(&self.inner.counters.fallbacks);
    }

    fn record(&self, probe: bool, unavailable: Option<bool>) {
        let mut m = self.machine();
        let counters = &self.inner.counters;
        let open = |m: &mut Machine, now: u64| {
            m.state = BreakerState::Open;
            m.opened_at_ms = now;
            m.probe_in_flight = false;
            bump(&counters.opened);
        };
        match (probe, unavailable) {
            // A probe that was dropped before it finished proves nothing: back to open,
            // with the cool-down already elapsed, so the next call probes again.
            (true, None) => {
                m.state = BreakerState::Open;
                m.probe_in_flight = false;
            }
            (false, None) => {}
            (true, Some(true)) => {
                bump(&counters.failures);
                open(&mut m, self.inner.clock.now_ms());
                crate::observe::breaker_transition("open", "the probe failed");
            }
            (true, Some(false)) => {
                m.state = BreakerState::Closed;
                m.consecutive_failures = 0;
                m.probe_in_flight = false;
                bump(&counters.closed);
                crate::observe::breaker_transition("closed", "the server answers again");
            }
            (false, Some(true)) => {
                bump(&counters.failures);
                if m.state == BreakerState::Closed {
                    m.consecutive_failures += 1;
                    if m.consecutive_failures >= self.inner.options.failure_threshold {
                        open(&mut m, self.inner.clock.now_ms());
                        crate::observe::breaker_transition(
                            "open",
                            "consecutive unavailability errors reached the threshold",
                        );
                    }
                }
            }
            // A call let through before the breaker opened that succeeded late does not
            // close it: only the probe decides, so recovery is observed once.
            (false, Some(false)) => {
                if m.state == BreakerState::Closed {
                    m.consecutive_failures = 0;
                }
            }
        }
    }
}

/// Permission to make one call; report its outcome with [`Permit::record`]. Dropping a
/// permit unrecorded (the call was cancelled) counts as neither success nor failure; a
/// dropped probe returns the breaker to open so that the next call probes.
#[must_use = "record the call's outcome, or the breaker learns nothing"]
#[derive(Debug)]
pub struct Permit {
    breaker: CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl Permit {
    /// True when this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records the call's outcome: an error with [`KvError::is_unavailable`] is a
    /// failure; success and every other error mean the server answered.
    pub fn record<T>(mut self, result: &KvResult<T>) {
        self.recorded = true;
        let unavailable = matches!(result, Err(e) if e.is_unavailable());
        self.breaker.record(self.probe, Some(unavailable));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(self.probe, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ManualClock;

    fn breaker(threshold: u32, cool_down_ms: u64) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new(0);
        let options = BreakerOptions::builder()
            .failure_threshold(threshold)
            .cool_down(Duration::from_millis(cool_down_ms))
            .build()
            .unwrap();
        (
            CircuitBreaker::with_clock(options, Arc::new(clock.clone())),
            clock,
        )
    }

    fn down() -> KvResult<()> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }

    fn answer(b: &CircuitBreaker, r: KvResult<()>) -> KvResult<()> {
        b.try_acquire().map(|p| p.record(&r))
    }

    #[test]
    fn options_are_validated() {
        let e = BreakerOptions::builder()
            .failure_threshold(0)
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        let e = BreakerOptions::builder()
            .cool_down(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(e.message().contains("0ns"), "{e}");
        assert!(BreakerOptions::builder()
            .cool_down(Duration::from_secs(3601))
            .build()
            .is_err());
    }

    #[test]
    fn opens_after_n_consecutive_failures_and_probes_after_the_cool_down() {
        let (b, clock) = breaker(3, 100);
        answer(&b, down()).unwrap();
        answer(&b, down()).unwrap();
        answer(&b, Ok(())).unwrap();
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "a success resets the count"
        );
        for _ in 0..3 {
            answer(&b, down()).unwrap();
        }
        assert_eq!(b.state(), BreakerState::Open);
        let e = b.try_acquire().unwrap_err();
        assert!(e.is_unavailable() && is_circuit_open(&e), "{e}");
        assert!(e.message().contains("3 consecutive"), "{e}");
        clock.advance(Duration::from_millis(99));
        assert!(b.try_acquire().is_err(), "still cooling down");
        clock.advance(Duration::from_millis(1));
        let probe = b.try_acquire().unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire().is_err(), "one probe at a time");
        probe.record(&down());
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");
        assert!(b.try_acquire().is_err(), "and restarts the cool-down");
        clock.advance(Duration::from_millis(100));
        b.try_acquire().unwrap().record(&Ok(()));
        assert_eq!(b.state(), BreakerState::Closed);
        let s = b.stats();
        assert_eq!(
            (s.calls, s.failures, s.rejected, s.opened, s.closed, s.probes),
            (8, 6, 4, 2, 1, 2),
            "{s:?}"
        );
    }

    #[test]
    fn only_unavailability_counts() {
        let (b, _) = breaker(1, 100);
        answer(&b, Err(KvError::new(ErrorKind::Server, "WRONGTYPE x"))).unwrap();
        answer(&b, Err(KvError::invalid_input("empty key"))).unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
        answer(&b, Err(KvError::new(ErrorKind::Unavailable, "refused"))).unwrap();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn a_dropped_probe_lets_the_next_call_probe() {
        let (b, clock) = breaker(1, 100);
        answer(&b, down()).unwrap();
        clock.advance(Duration::from_millis(100));
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), BreakerState::Open);
        let probe = b.try_acquire().expect("the next call is the probe");
        assert!(probe.is_probe());
        probe.record(&Ok(()));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.stats().opened, 1, "dropping a probe is not a new opening");
    }

    #[test]
    fn late_successes_do_not_close_an_open_breaker() {
        let (b, _) = breaker(1, 100);
        let early = b.try_acquire().unwrap();
        answer(&b, down()).unwrap();
        early.record(&Ok(()));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn call_records_and_refuses() {
        let (b, _) = breaker(2, 1000);
        assert_eq!(b.call(|| async { Ok(7) }).await.unwrap(), 7);
        for _ in 0..2 {
            assert!(b.call(|| async { down() }).await.is_err());
        }
        let mut ran = false;
        let e = b
            .call(|| {
                ran = true;
                async { Ok(()) }
            })
            .await
            .unwrap_err();
        assert!(is_circuit_open(&e) && !ran, "refused without calling");
    }
}
