//! The `rustauth-kv` binary against a real `redis-server` (the conformance harness's
//! shared server: `RUSTAUTH_REDIS_URL`, or one started for this test binary and killed
//! with it). Each test works under a prefix of its own; output is checked as JSON and as
//! exit codes, and the stored keys through a raw probe connection.

mod clear;
mod health;
mod inspect;
mod ratelimit;
mod sessions;
mod support;
