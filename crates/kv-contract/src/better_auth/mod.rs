//! Living beside Better Auth (Node) on one Redis: its session layout, its signed session
//! cookie and its revocation watermark, read and written through any
//! [`SecondaryStorage`](crate::SecondaryStorage) in Better Auth's flat layout
//! ([`StorageOptionsBuilder::better_auth_compatible`](crate::storage::StorageOptionsBuilder::better_auth_compatible)).
//!
//! Better Auth (≥ 1.6, with `secondaryStorage`) keeps, under its `keyPrefix`:
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `<token>` | JSON `{"session": {...}, "user": {...}}`, camelCase, ISO-8601 dates | floor(seconds until `expiresAt`); not written when 0 |
//! | `active-sessions-<userId>` | JSON array `[{"token", "expiresAt"}]`, `expiresAt` in epoch ms, sorted by expiry | the furthest member's |
//! | `revoked-sessions-before-<userId>` (≥ 1.7.16) | epoch ms, decimal, never lowered | max(session lifetime, 1 day, admin impersonation duration) |
//! | `verification:<identifier>` | JSON | the value's own |
//!
//! - [`session`]: the typed value ([`SessionValue`], [`IsoTime`]) and index entries;
//! - [`cookie`]: `sign`/`verify` of `<token>.<base64 HMAC-SHA256(secret, token)>`,
//!   URL-encoded, as `better-call` does;
//! - [`migrate`]: copies that data between the flat and namespaced layouts (the CLI's
//!   `migrate better-auth`);
//! - [`store`]: [`BetterAuthSessions`], the reader and writer of that layout, rejecting a
//!   session created before its user's watermark on every read, as 1.7.16 does.
//!
//! `docs/sessions.md` ("Better Auth's layout") states the rules and how they compare
//! with upstream.

pub mod cookie;
pub mod migrate;
pub mod session;
pub mod store;

pub use cookie::{sign_cookie, verify_cookie, SESSION_COOKIE};
pub use session::{ActiveSessionRef, IsoTime, SessionRecord, SessionValue, UserRecord};
pub use store::{BetterAuthSessionOptions, BetterAuthSessions, WriteOutcome};
