//! The one piece of logic this adapter has: turning better-auth-rs's native arguments
//! (`FieldValue` keys and values, `f64` seconds) into rustauth-kv's (`&str`, `Bytes`,
//! `Duration`), and `KvError` into `AuthError`. Pure functions, tested by tables below;
//! the stores themselves are rustauth-kv's.
//!
//! Rules (also in the crate docs):
//! - a key is a string (`String`, or `Utf16String` without unpaired surrogates); a
//!   number or boolean key is converted as JavaScript's `String(key)` does (what ioredis
//!   and better-auth-rs's own `RedisAdapter` send); any other key is rejected;
//! - a value is a string, stored as its UTF-8 bytes; anything else (`undefined` from
//!   `stringify_native`, numbers, objects) is rejected, like better-auth-rs's own
//!   `RedisAdapter`, without touching what is stored;
//! - a `set` TTL is rounded **up** to whole milliseconds, an `increment` TTL up to whole
//!   seconds (a TTL never shortens); zero, negative, NaN, infinite and too large TTLs are
//!   rejected before any I/O with an error naming the value.
//!
//! Errors never name the key: better-auth-rs's keys are session tokens and verification
//! identifiers, which are credentials.

use std::time::Duration;

use better_auth_core::error::{DatabaseError, DatabaseErrorCause};
use better_auth_core::{AuthError, FieldValue};
use bytes::Bytes;
use rustauth_kv::ttl::{MAX_TTL, MAX_TTL_MS};
use rustauth_kv::{ErrorKind, KvError, KvResult, RateLimitRule};

/// What a [`FieldValue`] is, in JavaScript's words, for error messages (never its content).
pub(crate) fn kind_of(value: &FieldValue) -> &'static str {
    match value {
        FieldValue::Undefined => "undefined",
        FieldValue::Null => "null",
        FieldValue::Bool(_) => "a boolean",
        FieldValue::Number(_) => "a number",
        FieldValue::String(_) | FieldValue::Utf16String(_) => "a string",
        FieldValue::Date(_) => "a Date",
        FieldValue::Array(_) => "an array",
        FieldValue::Object(_) => "an object",
        FieldValue::Function(_) => "a function",
    }
}

/// The logical key of a native key.
pub(crate) fn key_text(key: &FieldValue) -> KvResult<String> {
    match key {
        FieldValue::String(s) => Ok(s.clone()),
        FieldValue::Utf16String(s) => s.to_utf8().map_err(|_| {
            KvError::invalid_input(
                "better-auth-rs secondary-storage key has an unpaired UTF-16 surrogate; \
                 Redis keys here are UTF-8",
            )
        }),
        FieldValue::Number(_) | FieldValue::Bool(_) => {
            let units = key.display_utf16().map_err(|e| {
                KvError::invalid_input(format!(
                    "better-auth-rs secondary-storage key ({}) has no string form: {e}",
                    kind_of(key)
                ))
            })?;
            units.to_utf8().map_err(|_| {
                KvError::invalid_input("better-auth-rs secondary-storage key is not UTF-16")
            })
        }
        other => Err(KvError::invalid_input(format!(
            "better-auth-rs secondary-storage key is {}; keys must be strings, numbers or \
             booleans",
            kind_of(other)
        ))),
    }
}

/// The bytes stored for a native value.
pub(crate) fn value_bytes(value: &FieldValue) -> KvResult<Bytes> {
    match value {
        FieldValue::String(s) => Ok(Bytes::copy_from_slice(s.as_bytes())),
        FieldValue::Utf16String(s) => s.to_utf8().map(Bytes::from).map_err(|_| {
            KvError::invalid_input(
                "better-auth-rs secondary-storage value has an unpaired UTF-16 surrogate; \
                 values are stored as UTF-8",
            )
        }),
        other => Err(KvError::invalid_input(format!(
            "better-auth-rs secondary-storage value is {}; values must be strings \
             (better-auth-rs serializes with stringify_native first)",
            kind_of(other)
        ))),
    }
}

/// The string of stored bytes (everything this adapter writes is UTF-8).
pub(crate) fn value_text(bytes: Bytes) -> KvResult<String> {
    String::from_utf8(bytes.into()).map_err(|e| {
        KvError::unexpected(format!(
            "a better-auth-rs secondary-storage value is not UTF-8 (byte {} is invalid): it \
             was not written by this adapter",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The TTL of `set`: `ttl_seconds` as a [`Duration`] (to the nearest representable
/// nanosecond, at least 1 ns), which rustauth-kv rounds up to whole milliseconds.
/// Going through `Duration` rather than `ttl_seconds * 1000.0` keeps float noise from
/// rounding up: 1.1 s is 1 100 ms, not 1 101.
pub(crate) fn set_ttl(ttl_seconds: f64) -> KvResult<Duration> {
    duration("set", ttl_seconds)
}

/// The TTL of `increment`: `ttl_seconds` rounded up to whole seconds (rustauth-kv's
/// increment, like Better Auth's, counts in whole seconds).
pub(crate) fn increment_ttl(ttl_seconds: f64) -> KvResult<Duration> {
    let d = duration("increment", ttl_seconds)?;
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let d = Duration::from_secs(secs);
    if d > MAX_TTL {
        return Err(too_large("increment", ttl_seconds));
    }
    Ok(d)
}

fn duration(operation: &str, ttl_seconds: f64) -> KvResult<Duration> {
    let secs = positive_finite(operation, ttl_seconds)?;
    let d = Duration::try_from_secs_f64(secs).map_err(|_| too_large(operation, ttl_seconds))?;
    if d > MAX_TTL {
        return Err(too_large(operation, ttl_seconds));
    }
    // A positive TTL below 1 ns is still a TTL, never "no expiry" or "delete".
    Ok(d.max(Duration::from_nanos(1)))
}

fn positive_finite(operation: &str, ttl_seconds: f64) -> KvResult<f64> {
    if ttl_seconds.is_finite() && ttl_seconds > 0.0 {
        return Ok(ttl_seconds);
    }
    Err(KvError::invalid_input(format!(
        "better-auth-rs secondary-storage {operation}: TTL {ttl_seconds} s is not a positive \
         finite number of seconds (an absent TTL means no expiry)"
    )))
}

fn too_large(operation: &str, ttl_seconds: f64) -> KvError {
    KvError::invalid_input(format!(
        "better-auth-rs secondary-storage {operation}: TTL {ttl_seconds} s is too large: the \
         limit is {MAX_TTL_MS} ms (2^53 - 1)"
    ))
}

/// The rule of one better-auth-rs rate-limit decision: `window` seconds rounded up to
/// whole milliseconds (through `Duration`, as for TTLs); `max_requests` rounded down (Better Auth admits while
/// `count <= max`, so 2.5 admits 2).
pub(crate) fn rule(window: f64, max_requests: f64) -> KvResult<RateLimitRule> {
    if !(window.is_finite() && window > 0.0) {
        return Err(KvError::invalid_config(format!(
            "better-auth-rs rate limit: window {window} s is not a positive finite number"
        )));
    }
    if !(max_requests.is_finite() && max_requests >= 1.0) {
        return Err(KvError::invalid_config(format!(
            "better-auth-rs rate limit: max {max_requests} is not a finite number of at \
             least 1"
        )));
    }
    let window = Duration::try_from_secs_f64(window).map_err(|_| {
        KvError::invalid_config(format!(
            "better-auth-rs rate limit: window {window} s is too large"
        ))
    })?;
    // At least 1 ns; RateLimitRule rounds up to whole milliseconds and rejects a window
    // above its limit, naming it.
    RateLimitRule::new(
        window.max(Duration::from_nanos(1)),
        max_requests.floor() as u64,
    )
}

/// better-auth-rs's error for one of ours. An outage (`Unavailable`, `Timeout`) is a
/// database *connection* error, anything else a *query* error; the `KvError` is kept as
/// the `source()`, so its kind stays reachable by downcasting.
pub(crate) fn auth_error(error: KvError) -> AuthError {
    let message = format!("rustauth-kv: {error}");
    let outage = matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Timeout);
    let cause = DatabaseErrorCause::from_source(message, error, None);
    AuthError::Database(if outage {
        DatabaseError::Connection(cause)
    } else {
        DatabaseError::Query(cause)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_ttl_rounds_up_to_milliseconds() {
        use rustauth_kv::ttl::Expiry;
        let cases: &[(f64, u64)] = &[
            (1.0, 1000),
            (1.1, 1100),
            (0.3, 300),
            (0.0001, 1),
            (1e-300, 1),
            (1.0001, 1001),
            (60.5, 60_500),
            (604_800.0, 604_800_000),
            (9_007_199_254_740.0, 9_007_199_254_740_000),
        ];
        for (secs, ms) in cases {
            let ttl = set_ttl(*secs).unwrap();
            assert_eq!(
                Expiry::from_ttl(Some(ttl)).unwrap(),
                Expiry::AfterMs(*ms),
                "{secs}"
            );
        }
    }

    #[test]
    fn increment_ttl_rounds_up_to_seconds() {
        let cases: &[(f64, u64)] = &[
            (1.0, 1),
            (0.001, 1),
            (10.0, 10),
            (10.2, 11),
            (60.5, 61),
            (3.0000000000000004, 3), // float noise, not a longer TTL
            (3.000000001, 4),
        ];
        for (secs, want) in cases {
            assert_eq!(
                increment_ttl(*secs).unwrap(),
                Duration::from_secs(*want),
                "{secs}"
            );
        }
    }

    #[test]
    fn bad_ttls_are_rejected_naming_the_value() {
        let bad = [
            (0.0, "TTL 0 s"),
            (-0.0, "TTL -0 s"),
            (-1.5, "TTL -1.5 s"),
            (f64::NAN, "TTL NaN s"),
            (f64::INFINITY, "TTL inf s"),
            (f64::NEG_INFINITY, "TTL -inf s"),
            (f64::MAX, "is too large"),
            (1e16, "is too large"),
        ];
        for (ttl, shown) in bad {
            for e in [set_ttl(ttl).unwrap_err(), increment_ttl(ttl).unwrap_err()] {
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{ttl}");
                assert!(e.message().contains(shown), "{ttl}: {e}");
            }
        }
        assert!(set_ttl(f64::MAX)
            .unwrap_err()
            .message()
            .contains(&f64::MAX.to_string()));
    }

    #[test]
    fn keys_are_strings_numbers_or_booleans() {
        assert_eq!(
            key_text(&"active-sessions-1".into()).unwrap(),
            "active-sessions-1"
        );
        assert_eq!(key_text(&FieldValue::Number(7.0)).unwrap(), "7");
        assert_eq!(key_text(&FieldValue::Number(0.5)).unwrap(), "0.5");
        assert_eq!(key_text(&FieldValue::Bool(true)).unwrap(), "true");
        let utf16 = better_auth_core::Utf16String::from_units("tök".encode_utf16().collect());
        assert_eq!(key_text(&FieldValue::Utf16String(utf16)).unwrap(), "tök");
        let lone = better_auth_core::Utf16String::from_units(vec![0xd800]);
        let e = key_text(&FieldValue::Utf16String(lone)).unwrap_err();
        assert!(e.message().contains("unpaired"), "{e}");
        for (key, kind) in [
            (FieldValue::Undefined, "undefined"),
            (FieldValue::Null, "null"),
            (
                FieldValue::from(better_auth_core::FieldMap::default()),
                "an object",
            ),
        ] {
            let e = key_text(&key).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.message().contains(&format!("key is {kind}")), "{e}");
        }
    }

    #[test]
    fn values_are_strings_stored_as_utf8() {
        let v = value_bytes(&r#"{"session":{}}"#.into()).unwrap();
        assert_eq!(&v[..], br#"{"session":{}}"#);
        assert_eq!(value_text(v).unwrap(), r#"{"session":{}}"#);
        for (value, kind) in [
            (FieldValue::Undefined, "undefined"),
            (FieldValue::Number(1.0), "a number"),
            (FieldValue::Null, "null"),
        ] {
            let e = value_bytes(&value).unwrap_err();
            assert!(e.message().contains(&format!("value is {kind}")), "{e}");
        }
        let e = value_text(Bytes::from_static(b"ok\xff")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedData);
        assert!(e.message().contains("byte 2"), "{e}");
    }

    #[test]
    fn rules_round_the_window_up_and_max_down() {
        let r = rule(10.0, 3.0).unwrap();
        assert_eq!((r.window_ms(), r.max()), (10_000, 3));
        let r = rule(0.0005, 2.5).unwrap();
        assert_eq!((r.window_ms(), r.max()), (1, 2));
        for (window, max, shown) in [
            (0.0, 3.0, "window 0 s"),
            (f64::NAN, 3.0, "window NaN s"),
            (-1.0, 3.0, "window -1 s"),
            (10.0, 0.5, "max 0.5"),
            (10.0, f64::INFINITY, "max inf"),
            (1e300, 3.0, "too large"),
        ] {
            let e = rule(window, max).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig);
            assert!(e.message().contains(shown), "{window} {max}: {e}");
        }
    }

    #[test]
    fn errors_keep_the_kv_error_as_source() {
        use std::error::Error as _;
        let e = auth_error(KvError::new(ErrorKind::Timeout, "GET timed out after 1s"));
        assert!(
            matches!(e, AuthError::Database(DatabaseError::Connection(_))),
            "{e:?}"
        );
        assert!(e.to_string().contains("GET timed out"), "{e}");
        let mut chain = e.source();
        let kv = std::iter::from_fn(|| {
            let next = chain?;
            chain = next.source();
            Some(next)
        })
        .find_map(|s| s.downcast_ref::<KvError>())
        .expect("a KvError in the source chain");
        assert_eq!(kv.kind(), ErrorKind::Timeout);
        let e = auth_error(KvError::invalid_input("bad"));
        assert!(
            matches!(e, AuthError::Database(DatabaseError::Query(_))),
            "{e:?}"
        );
    }
}
