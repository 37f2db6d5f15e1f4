//! The workloads: what one operation of each is, and the fixed sizes they run with.

/// The value every write stores: 200 bytes, as session records and tokens are.
pub(crate) const VALUE_LEN: usize = 200;
/// Distinct keys the keyed workloads cycle through.
pub(crate) const KEYS: u64 = 10_000;
/// Sessions read by `session get`, created before the runs.
pub(crate) const SESSIONS: u64 = 1_000;
/// Users listed by `session list`, each with [`SESSIONS_PER_USER`] sessions.
pub(crate) const LIST_USERS: u64 = 100;
/// Sessions per listed user.
pub(crate) const SESSIONS_PER_USER: u64 = 10;
/// Lock names the lock workload cycles through.
pub(crate) const LOCKS: u64 = 1_000;
/// Time to live of written keys, in ms: long enough to outlive a run.
pub(crate) const TTL_MS: u64 = 600_000;

/// One workload: one operation, repeated by every task of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Workload {
    /// `GET` of one hot 200-byte key.
    Get,
    /// `SET key value PX` over [`KEYS`] keys.
    SetPx,
    /// `SET key value NX PX` of a new key each time.
    SetNx,
    /// `SET NX PX` of a new key, then `take` (`GETDEL`) of it: a one-time code's life.
    SetNxTake,
    /// A fixed-window consume on one hot bucket.
    FixedHot,
    /// A fixed-window consume over [`KEYS`] buckets.
    Fixed10k,
    /// A sliding-window consume on one hot bucket.
    SlidingHot,
    /// A sliding-window consume over [`KEYS`] buckets.
    Sliding10k,
    /// A GCRA consume on one hot bucket.
    GcraHot,
    /// A GCRA consume over [`KEYS`] buckets.
    Gcra10k,
    /// A consume on a bucket that is over its limit, with the blocked cache on.
    DeniedCached,
    /// A session created (and indexed) for a new user.
    SessionCreate,
    /// A session read by token, over [`SESSIONS`] sessions.
    SessionGet,
    /// A user's sessions listed ([`SESSIONS_PER_USER`] each).
    SessionList,
    /// A session created for a new user, then all of that user's sessions revoked.
    SessionRevokeAll,
    /// A lock acquired and released, over [`LOCKS`] names.
    Lock,
}

impl Workload {
    /// Every workload, in report order.
    pub(crate) const ALL: [Workload; 16] = [
        Workload::Get,
        Workload::SetPx,
        Workload::SetNx,
        Workload::SetNxTake,
        Workload::FixedHot,
        Workload::Fixed10k,
        Workload::SlidingHot,
        Workload::Sliding10k,
        Workload::GcraHot,
        Workload::Gcra10k,
        Workload::DeniedCached,
        Workload::SessionCreate,
        Workload::SessionGet,
        Workload::SessionList,
        Workload::SessionRevokeAll,
        Workload::Lock,
    ];

    /// The short name used in tables, JSON and `--only`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::SetPx => "set_px",
            Workload::SetNx => "set_nx",
            Workload::SetNxTake => "set_nx+take",
            Workload::FixedHot => "fixed_window_hot",
            Workload::Fixed10k => "fixed_window_10k",
            Workload::SlidingHot => "sliding_window_hot",
            Workload::Sliding10k => "sliding_window_10k",
            Workload::GcraHot => "gcra_hot",
            Workload::Gcra10k => "gcra_10k",
            Workload::DeniedCached => "denied_cached",
            Workload::SessionCreate => "session_create",
            Workload::SessionGet => "session_get",
            Workload::SessionList => "session_list",
            Workload::SessionRevokeAll => "session_create+revoke_all",
            Workload::Lock => "lock_acquire+release",
        }
    }

    /// What the raw clients send for one operation, or `None` when they have no
    /// equivalent (the session index is this project's own scripts).
    pub(crate) fn raw_commands(self) -> Option<&'static str> {
        Some(match self {
            Workload::Get => "GET",
            Workload::SetPx => "SET PX",
            Workload::SetNx => "SET NX PX",
            Workload::SetNxTake => "SET NX PX, GETDEL",
            Workload::FixedHot | Workload::Fixed10k => "EVALSHA fixed window",
            Workload::DeniedCached => "EVALSHA fixed window (denied)",
            Workload::SessionGet => "HMGET",
            Workload::Lock => "EVALSHA acquire, EVALSHA release",
            _ => return None,
        })
    }

    /// The rate-limit algorithm this workload consumes with, if it is one.
    pub(crate) fn limiter(self) -> Option<LimiterKind> {
        Some(match self {
            Workload::FixedHot | Workload::Fixed10k => LimiterKind::Fixed,
            Workload::SlidingHot | Workload::Sliding10k => LimiterKind::Sliding,
            Workload::GcraHot | Workload::Gcra10k => LimiterKind::Gcra,
            Workload::DeniedCached => LimiterKind::Cached,
            _ => return None,
        })
    }

    /// The bucket of operation `i`.
    pub(crate) fn bucket(self, i: u64) -> String {
        match self {
            Workload::Fixed10k | Workload::Sliding10k | Workload::Gcra10k => {
                format!("b{}", i % KEYS)
            }
            Workload::DeniedCached => "denied".to_owned(),
            _ => "hot".to_owned(),
        }
    }
}

/// The limiters a contender keeps, one per algorithm (a limiter has one algorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimiterKind {
    /// Fixed window.
    Fixed,
    /// Sliding window.
    Sliding,
    /// GCRA.
    Gcra,
    /// Fixed window with the blocked cache.
    Cached,
}

/// The `--only` filter: a filter that is a workload's name selects that workload only
/// (`get` is not also `session_get`); any other filter selects the workloads whose name
/// contains it (`session` selects every session workload).
pub(crate) fn selected(filters: &[String]) -> Vec<Workload> {
    let matches = |w: Workload, f: &str| {
        let exact = Workload::ALL.iter().any(|x| x.name() == f);
        if exact {
            w.name() == f
        } else {
            w.name().contains(f)
        }
    };
    Workload::ALL
        .into_iter()
        .filter(|w| filters.is_empty() || filters.iter().any(|f| matches(*w, f)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(filters: &[&str]) -> Vec<&'static str> {
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        selected(&filters).into_iter().map(Workload::name).collect()
    }

    #[test]
    fn an_exact_name_selects_one_workload_a_part_selects_a_group() {
        assert_eq!(names(&["get"]), ["get"]);
        assert_eq!(names(&["gcra"]), ["gcra_hot", "gcra_10k"]);
        assert_eq!(names(&["get", "lock"]), ["get", "lock_acquire+release"]);
        assert_eq!(names(&[]).len(), Workload::ALL.len());
        assert!(names(&["nothing"]).is_empty());
    }
}
