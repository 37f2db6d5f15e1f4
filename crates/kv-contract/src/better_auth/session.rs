//! Better Auth's cached session value and per-user index entries, typed.
//!
//! Fields Better Auth (or a plugin, or `additionalFields`) adds that are not named here
//! are kept in `extra` and written back unchanged, so a read-modify-write by Rust never
//! drops another service's data.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A point in time as JavaScript's `Date.prototype.toISOString` writes it
/// (`2026-12-02T14:06:46.123Z`), held as milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoTime(pub i64);

impl IsoTime {
    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.sss…]Z` (UTC, what `toISOString` writes; extra
    /// fraction digits are truncated to ms). `None` for anything else.
    pub fn parse(s: &str) -> Option<IsoTime> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
            return None;
        }
        if b[16] != b':' || *b.last()? != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let ms = match &b[19..b.len() - 1] {
            [] => 0,
            [b'.', frac @ ..] if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) => {
                let mut digits = [b'0'; 3];
                for (slot, c) in digits.iter_mut().zip(frac) {
                    *slot = *c;
                }
                std::str::from_utf8(&digits).ok()?.parse::<i64>().ok()?
            }
            _ => return None,
        };
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
            return None;
        }
        if sec > 59 {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        Some(IsoTime(
            ((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms,
        ))
    }
}

impl fmt::Display for IsoTime {
    /// `toISOString`'s form: always milliseconds, always `Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

impl Serialize for IsoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IsoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IsoTime::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an ISO-8601 UTC time: {s:?}")))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// The `session` half of a cached value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// The session's id.
    pub id: String,
    /// The bearer token: also the value's key.
    pub token: String,
    /// The user's id.
    pub user_id: String,
    /// When the session expires.
    pub expires_at: IsoTime,
    /// When it was created (compared with the revocation watermark).
    pub created_at: IsoTime,
    /// When it was last updated.
    pub updated_at: IsoTime,
    /// The client's address, `""` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// The client's user agent, `""` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Every other field, kept as it was.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `user` half of a cached value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    /// The user's id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// E-mail address.
    #[serde(default)]
    pub email: String,
    /// Whether the address was verified.
    #[serde(default)]
    pub email_verified: bool,
    /// Avatar URL (`null` when none).
    #[serde(default)]
    pub image: Option<String>,
    /// When the user was created.
    pub created_at: IsoTime,
    /// When the user was last updated.
    pub updated_at: IsoTime,
    /// Every other field, kept as it was.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The value Better Auth caches under a session's token: `{"session": …, "user": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionValue {
    /// The session.
    pub session: SessionRecord,
    /// Its user, as of the last write.
    pub user: UserRecord,
}

/// One entry of `active-sessions-<userId>`: `{"token", "expiresAt"}` (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveSessionRef {
    /// The session's token.
    pub token: String,
    /// Its expiry, in ms since the epoch.
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_round_trip_as_to_iso_string() {
        for (text, ms) in [
            ("1970-01-01T00:00:00.000Z", 0),
            ("2026-12-02T14:06:46.123Z", 1_796_220_406_123),
            ("2000-02-29T23:59:59.999Z", 951_868_799_999),
            ("1969-12-31T23:59:59.999Z", -1),
        ] {
            assert_eq!(IsoTime::parse(text), Some(IsoTime(ms)), "{text}");
            assert_eq!(IsoTime(ms).to_string(), text);
        }
        assert_eq!(
            IsoTime::parse("2026-12-02T14:06:46Z"),
            Some(IsoTime(1_796_220_406_000))
        );
        assert_eq!(
            IsoTime::parse("2026-12-02T14:06:46.1234Z"),
            Some(IsoTime(1_796_220_406_123))
        );
        for bad in [
            "",
            "2026-12-02",
            "2026-13-02T14:06:46.123Z",
            "2026-02-30T14:06:46.123Z",
            "2026-12-02T24:06:46.123Z",
            "2026-12-02T14:06:46.123+01:00",
            "2026-12-02T14:06:46.Z",
            "+2026-12-02T14:06:46.123Z",
        ] {
            assert_eq!(IsoTime::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_keep_unknown_fields() {
        let raw = r#"{"session":{"id":"s1","token":"t1","userId":"u1","expiresAt":"2026-12-09T14:06:46.123Z","createdAt":"2026-12-02T14:06:46.123Z","updatedAt":"2026-12-02T14:06:46.123Z","ipAddress":"","userAgent":"curl","impersonatedBy":null},"user":{"id":"u1","name":"A","email":"a@example.com","emailVerified":false,"image":null,"createdAt":"2026-12-02T14:06:46.000Z","updatedAt":"2026-12-02T14:06:46.000Z","role":"admin"}}"#;
        let v: SessionValue = serde_json::from_str(raw).unwrap();
        assert_eq!(v.session.expires_at.to_string(), "2026-12-09T14:06:46.123Z");
        assert_eq!(v.session.extra["impersonatedBy"], Value::Null);
        assert_eq!(v.user.extra["role"], "admin");
        let back: Value = serde_json::to_value(&v).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(raw).unwrap());
    }
}
