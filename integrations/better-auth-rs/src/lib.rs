//! better-auth-rs (`better-auth` / `better-auth-core` 1.0.0-alpha.5) on rustauth-kv's
//! stores: an adapter, no store logic of its own.
//!
//! - [`KvSecondaryStorage`] — better-auth-rs's `SecondaryStorage` over our
//!   [`SecondaryStorage`](rustauth_kv::SecondaryStorage) (install with
//!   `BetterAuth::….secondary_storage(...)`); with it, better-auth-rs also counts rate
//!   limits in secondary storage through `increment`.
//! - [`KvRateLimitStorage`] — better-auth-rs's `RateLimitStorage` over our
//!   [`RateLimiter`](rustauth_kv::RateLimiter) (install with
//!   `RateLimitConfig::custom_storage(...)`).
//!
//! The argument conversions (keys, values, `f64` TTLs, rules, errors) are the only logic
//! here; they are listed on each type. The `redis` (default) and `fred` features choose
//! `rustauth-kv`'s backends.
//!
//! ```
//! use better_auth_core::store::SecondaryStorage;
//! use rustauth_kv::Kv;
//! use rustauth_kv_better_auth_rs::KvSecondaryStorage;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), better_auth_core::AuthError> {
//! let storage = KvSecondaryStorage::new(&Kv::memory()); // or Kv::connect(url).await?
//! storage.set("otp:alice", "123456", Some(300)).await?;
//! assert_eq!(storage.get_and_delete("otp:alice").await?, Some("123456".into()));
//! assert_eq!(storage.get("otp:alice").await?, None);
//! assert_eq!(storage.increment("203.0.113.7|/sign-in/email", 10.0).await?, 1.0);
//! assert!(storage.set("k", "v", Some(0)).await.is_err()); // TTL 0: rejected, named
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod convert;
mod rate_limit;
mod storage;

pub use rate_limit::KvRateLimitStorage;
pub use storage::KvSecondaryStorage;

/// The better-auth-rs core crate whose traits this crate implements (re-exported).
pub use better_auth_core;
pub use rustauth_kv;

/// This crate's README, compiled as a doctest so its program cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoc;

#[cfg(test)]
mod tests {
    /// The program of `docs/integrations.md` is this crate's README program, which is
    /// compiled as a doctest here (the integrations file marks it `ignore`: it is a
    /// doctest of a crate without better-auth-rs).
    #[test]
    fn integrations_doc_shows_the_compiled_readme_program() {
        fn block<'a>(text: &'a str, fence: &str) -> &'a str {
            let start = text.find(fence).map(|i| i + fence.len());
            let start = start.unwrap_or_else(|| panic!("no {fence:?} block"));
            let len = text[start..].find("```\n").expect("a closing fence");
            &text[start..start + len]
        }
        let dir = env!("CARGO_MANIFEST_DIR");
        let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
        let doc = std::fs::read_to_string(format!("{dir}/../../docs/integrations.md")).unwrap();
        let section = &doc[doc
            .find("## better-auth-rs")
            .expect("the better-auth-rs section")..];
        let program = block(&readme, "```rust,no_run\n");
        assert_eq!(block(section, "```rust,ignore\n"), program);
        assert!(
            program.lines().count() < 30,
            "the docs promise under 30 lines"
        );
    }
}
