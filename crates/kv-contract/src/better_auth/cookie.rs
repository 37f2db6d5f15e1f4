//! Better Auth's signed session cookie: `{cookiePrefix}.session_token` =
//! `encodeURIComponent(<token> + "." + base64(HMAC-SHA256(secret, token)))`, the
//! signature in standard base64 with padding (44 characters), as `better-call`'s
//! `signCookieValue` writes and `getSignedCookie` checks.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

/// The cookie's name under Better Auth's default `cookiePrefix` (`better-auth`).
pub const SESSION_COOKIE: &str = "better-auth.session_token";

/// What JavaScript's `encodeURIComponent` leaves alone: `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

fn mac(secret: &[u8], token: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(token.as_bytes());
    mac
}

/// The cookie value Better Auth would set for `token` with `secret`.
pub fn sign_cookie(token: &str, secret: &[u8]) -> String {
    let signature = base64::engine::general_purpose::STANDARD
        .encode(mac(secret, token).finalize().into_bytes());
    utf8_percent_encode(&format!("{token}.{signature}"), URI_COMPONENT).to_string()
}

/// The session token of a cookie value Better Auth signed with `secret`, or `None` when
/// it is malformed or its signature does not match (compared in constant time). Accepts
/// the value URL-encoded (as sent) or decoded.
pub fn verify_cookie(value: &str, secret: &[u8]) -> Option<String> {
    let decoded = percent_decode_str(value).decode_utf8().ok()?;
    let (token, signature) = decoded.rsplit_once('.')?;
    // better-call: the signature starts after the last '.', at position ≥ 1, and is 44
    // characters ending with '='.
    if token.is_empty() || signature.len() != 44 || !signature.ends_with('=') {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .ok()?;
    mac(secret, token).verify_slice(&raw).ok()?;
    Some(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_better_call_and_verifies() {
        // Computed with Node: encodeURIComponent(t + "." + base64(HMAC-SHA256("secret", t))).
        let signed = sign_cookie("abc", b"secret");
        assert_eq!(
            signed,
            "abc.mUba1OAOkT%2FIvo5dP34RCkqegy%2BD%2BwnDRShdeGONig4%3D"
        );
        assert_eq!(verify_cookie(&signed, b"secret").as_deref(), Some("abc"));
        let decoded = percent_decode_str(&signed).decode_utf8().unwrap();
        assert_eq!(verify_cookie(&decoded, b"secret").as_deref(), Some("abc"));
        assert_eq!(verify_cookie(&signed, b"other"), None);
        assert_eq!(
            verify_cookie(
                "abd.mUba1OAOkT%2FIvo5dP34RCkqegy%2BD%2BwnDRShdeGONig4%3D",
                b"secret"
            ),
            None
        );
        assert_eq!(verify_cookie("abc", b"secret"), None);
        assert_eq!(verify_cookie(".x", b"secret"), None);
        assert_eq!(verify_cookie("abc.%ZZ", b"secret"), None);
    }
}
