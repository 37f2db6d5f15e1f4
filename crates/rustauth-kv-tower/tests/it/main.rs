//! rustauth-kv-tower against real servers: the session store on every topology of the
//! conformance harness (memory, redis, fred, and the two cross-backend mixes: one
//! backend writes, the other reads), and the rate-limit layer over real HTTP. A server
//! test without a server fails, saying how to provide one.

mod http;
mod measure;
mod rate_limit;
mod sessions;
mod support;
