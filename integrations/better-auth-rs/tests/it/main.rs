//! The adapter against real servers: better-auth-rs's own flows (sign-up, sign-in,
//! session lookup, sign-out, rate-limited sign-in) and the storage contract, on memory,
//! redis-rs, fred and the two mixes (one backend writes, the other reads), asserting the
//! bytes and TTLs found in Redis. A server case without a server fails saying how to
//! provide one (`tests_conformance::server`), never skips.

mod flows;
mod rate_limit;
mod storage;
mod support;
