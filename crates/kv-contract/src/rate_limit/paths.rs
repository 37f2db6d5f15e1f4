//! [`PathRules`]: which rule limits which auth endpoint, with Better Auth's defaults.
//!
//! Resolution is first match, in this order:
//!
//! 1. custom rules, in the order they were added (exact paths, or patterns with `*` in
//!    the syntax of Better Auth's `customRules`, matched by a port of its
//!    `wildcardMatch`: see [`super::wildcard`]); a rule may disable limiting for its
//!    paths;
//! 2. Better Auth's built-in rules (unless removed): paths starting with `/sign-in`,
//!    `/sign-up`, `/change-password`, `/change-email` → 3 per 10 s; exactly
//!    `/request-password-reset`, `/send-verification-email`,
//!    `/email-otp/send-verification-otp`, `/email-otp/request-password-reset`, or
//!    starting with `/forget-password` → 3 per 60 s;
//! 3. the default rule (Better Auth's: 100 per 10 s).
//!
//! This is Better Auth's precedence (custom rules override plugin rules, which override
//! the special rules, which override the default), written as one ordered list.

use std::fmt;

use crate::error::{KvError, KvResult};
use crate::rate_limit::rule::RateLimitRule;
use crate::rate_limit::wildcard;

/// What a path is limited by.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathLimit {
    /// This rule.
    Limit(RateLimitRule),
    /// No limiting for this path (Better Auth's `customRules: { path: false }`).
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Exact(String),
    Prefix(String),
    /// A pattern with `*`, in Better Auth's `wildcardMatch` syntax.
    Glob(Vec<wildcard::Token>),
}

impl Matcher {
    /// Exact unless the pattern contains `*`: Better Auth compares other patterns with
    /// `===` and passes these to `wildcardMatch` ([`super::wildcard`]).
    fn parse(pattern: &str) -> Matcher {
        if !pattern.contains('*') {
            return Matcher::Exact(pattern.to_owned());
        }
        Matcher::Glob(wildcard::compile(pattern))
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(p) => p == path,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Glob(tokens) => wildcard::matches(tokens, path),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    pattern: String,
    matcher: Matcher,
    limit: PathLimit,
}

/// The path → rule table. Build with [`PathRules::builder`]; [`PathRules::default`] is
/// Better Auth's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRules {
    custom: Vec<Entry>,
    builtin: Vec<Entry>,
    default: RateLimitRule,
}

fn rule(window_secs: i64, max: i64) -> RateLimitRule {
    // Constants known to be valid.
    RateLimitRule::from_secs(window_secs, max).unwrap_or_else(|e| unreachable!("{e}"))
}

fn builtin_rules() -> Vec<Entry> {
    let auth = PathLimit::Limit(rule(10, 3));
    let mail = PathLimit::Limit(rule(60, 3));
    let prefix = |p: &str, limit| Entry {
        pattern: format!("{p}…"),
        matcher: Matcher::Prefix(p.to_owned()),
        limit,
    };
    let exact = |p: &str, limit| Entry {
        pattern: p.to_owned(),
        matcher: Matcher::Exact(p.to_owned()),
        limit,
    };
    vec![
        prefix("/sign-in", auth),
        prefix("/sign-up", auth),
        prefix("/change-password", auth),
        prefix("/change-email", auth),
        exact("/request-password-reset", mail),
        exact("/send-verification-email", mail),
        prefix("/forget-password", mail),
        exact("/email-otp/send-verification-otp", mail),
        exact("/email-otp/request-password-reset", mail),
    ]
}

impl Default for PathRules {
    fn default() -> Self {
        PathRules {
            custom: Vec::new(),
            builtin: builtin_rules(),
            default: rule(10, 100),
        }
    }
}

impl PathRules {
    /// Better Auth's default rule: 100 per 10 s.
    pub fn better_auth_default_rule() -> RateLimitRule {
        rule(10, 100)
    }

    /// Starts from Better Auth's table (built-in rules and the 100 per 10 s default).
    pub fn builder() -> PathRulesBuilder {
        PathRulesBuilder {
            rules: PathRules::default(),
            error: None,
        }
    }

    /// The limit of `path` (normalised first with [`normalize_path`]): the first
    /// matching custom rule, else the first matching built-in rule, else the default.
    pub fn resolve(&self, path: &str) -> PathLimit {
        let path = normalize_path(path);
        self.custom
            .iter()
            .chain(&self.builtin)
            .find(|e| e.matcher.matches(path))
            .map_or(PathLimit::Limit(self.default), |e| e.limit)
    }

    /// The default rule.
    pub fn default_rule(&self) -> RateLimitRule {
        self.default
    }
}

impl fmt::Display for PathRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.custom.iter().chain(&self.builtin) {
            match e.limit {
                PathLimit::Limit(r) => writeln!(f, "{} → {r}", e.pattern)?,
                PathLimit::Disabled => writeln!(f, "{} → not limited", e.pattern)?,
            }
        }
        write!(f, "* → {}", self.default)
    }
}

/// Builder for [`PathRules`].
#[derive(Debug, Clone)]
pub struct PathRulesBuilder {
    rules: PathRules,
    /// The first invalid pattern, reported by `build()`.
    error: Option<String>,
}

impl PathRulesBuilder {
    fn push(mut self, pattern: &str, limit: PathLimit) -> Self {
        if self.error.is_none() && !pattern.starts_with('/') {
            self.error = Some(format!("path rule pattern {pattern:?} must start with '/'"));
        }
        self.rules.custom.push(Entry {
            pattern: pattern.to_owned(),
            // Exact patterns are normalised like paths (lenient: `/x/` is `/x`); a `*`
            // pattern is given to the wildcard matcher as written, as upstream does
            // (`?` is a wildcard there, not a query string).
            matcher: if pattern.contains('*') {
                Matcher::parse(pattern)
            } else {
                Matcher::parse(normalize_path(pattern))
            },
            limit,
        });
        self
    }

    /// Adds a custom rule for `pattern` (an exact path, or with `*`/`**` wildcards),
    /// after the custom rules added before it.
    pub fn rule(self, pattern: &str, rule: RateLimitRule) -> Self {
        self.push(pattern, PathLimit::Limit(rule))
    }

    /// Adds a custom entry that disables limiting for `pattern`.
    pub fn disable(self, pattern: &str) -> Self {
        self.push(pattern, PathLimit::Disabled)
    }

    /// Sets the rule for paths no other entry matches (default 100 per 10 s).
    pub fn default_rule(mut self, rule: RateLimitRule) -> Self {
        self.rules.default = rule;
        self
    }

    /// Removes Better Auth's built-in rules (sign-in, password reset, OTP, ...).
    pub fn without_builtin_rules(mut self) -> Self {
        self.rules.builtin.clear();
        self
    }

    /// Validates and builds the table.
    pub fn build(self) -> KvResult<PathRules> {
        match self.error {
            Some(e) => Err(KvError::invalid_config(e)),
            None => Ok(self.rules),
        }
    }
}

/// The path as Better Auth buckets it: without query string or fragment, and without
/// trailing slashes (the root stays `/`). Strip your base path (`/api/auth`) before.
pub fn normalize_path(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = &path[..end];
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() && path.starts_with('/') {
        "/"
    } else {
        trimmed
    }
}

/// The bucket of a request, as Better Auth ≥ 1.7 names it: `{ip}|{path}` (path
/// normalised), or `no-trusted-ip|{path}` for a client without a usable address. IPv6
/// clients are bucketed by their /64, written fully expanded
/// (`2001:0db8:abcd:0012:0000:0000:0000:0000`), so one host cannot dodge its limit by
/// rotating addresses inside its subnet; IPv4-mapped IPv6 addresses count as IPv4.
/// Anything that does not parse as an IP is used as given.
pub fn bucket_key(ip: Option<&str>, path: &str) -> String {
    let ip = ip.map(str::trim).filter(|s| !s.is_empty());
    let ip = match ip.map(|s| (s, s.parse::<std::net::IpAddr>())) {
        None => "no-trusted-ip".to_owned(),
        Some((_, Ok(std::net::IpAddr::V4(v4)))) => v4.to_string(),
        Some((_, Ok(std::net::IpAddr::V6(v6)))) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!(
                    "{:04x}:{:04x}:{:04x}:{:04x}:0000:0000:0000:0000",
                    s[0], s[1], s[2], s[3]
                )
            }
        },
        Some((raw, Err(_))) => raw.to_owned(),
    };
    format!("{ip}|{}", normalize_path(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(window: i64, max: i64) -> PathLimit {
        PathLimit::Limit(rule(window, max))
    }

    #[test]
    fn bucket_keys_follow_better_auth() {
        let cases = [
            (
                Some("10.0.0.7"),
                "/sign-in/email?x=1",
                "10.0.0.7|/sign-in/email",
            ),
            (None, "/sign-in", "no-trusted-ip|/sign-in"),
            (Some(" "), "/x/", "no-trusted-ip|/x"),
            (
                Some("2001:db8:abcd:12::1"),
                "/sign-in",
                "2001:0db8:abcd:0012:0000:0000:0000:0000|/sign-in",
            ),
            (
                Some("2001:db8:abcd:12:ffff:1:2:3"),
                "/sign-in",
                "2001:0db8:abcd:0012:0000:0000:0000:0000|/sign-in",
            ),
            (Some("::ffff:192.0.2.1"), "/", "192.0.2.1|/"),
            (Some("unix-socket-peer"), "/a", "unix-socket-peer|/a"),
        ];
        for (ip, path, want) in cases {
            assert_eq!(bucket_key(ip, path), want, "{ip:?} {path}");
        }
    }

    #[test]
    fn better_auth_defaults() {
        let rules = PathRules::default();
        let cases = [
            ("/sign-in/email", limit(10, 3)),
            ("/sign-up/email", limit(10, 3)),
            ("/sign-in", limit(10, 3)),
            ("/change-password", limit(10, 3)),
            ("/change-email/", limit(10, 3)),
            ("/request-password-reset", limit(60, 3)),
            ("/request-password-reset/x", limit(10, 100)),
            ("/send-verification-email?callbackURL=/", limit(60, 3)),
            ("/forget-password/email-otp", limit(60, 3)),
            ("/email-otp/send-verification-otp", limit(60, 3)),
            ("/email-otp/request-password-reset", limit(60, 3)),
            ("/get-session", limit(10, 100)),
            ("/", limit(10, 100)),
        ];
        for (path, want) in cases {
            assert_eq!(rules.resolve(path), want, "{path}");
        }
    }

    #[test]
    fn custom_rules_first_match_then_builtin() {
        let rules = PathRules::builder()
            .disable("/sign-in/social")
            .rule("/sign-in/*", rule(60, 5))
            .rule("/sign-in/**", rule(60, 6))
            .rule("/two-factor/*", rule(30, 4))
            .default_rule(rule(1, 1000))
            .build()
            .unwrap();
        let cases = [
            ("/sign-in/social", PathLimit::Disabled),
            ("/sign-in/email", limit(60, 5)),
            ("/sign-in/email/x", limit(60, 6)),
            // As upstream: `/x/**` also matches `/x`.
            ("/sign-in", limit(60, 6)),
            ("/two-factor/verify-totp", limit(30, 4)),
            ("/two-factor", limit(1, 1000)),
            ("/sign-up/email", limit(10, 3)),
        ];
        for (path, want) in cases {
            assert_eq!(rules.resolve(path), want, "{path}");
        }
        let bare = PathRules::builder()
            .without_builtin_rules()
            .build()
            .unwrap();
        assert_eq!(bare.resolve("/sign-in/email"), limit(10, 100));
        let e = PathRules::builder()
            .rule("sign-in", rule(1, 1))
            .build()
            .unwrap_err();
        assert!(e.message().contains("\"sign-in\""), "{e}");
        assert!(rules.to_string().contains("/sign-in/social → not limited"));
    }

    #[test]
    fn buckets_and_normalisation() {
        assert_eq!(
            bucket_key(Some("1.2.3.4"), "/sign-in/email?x=1"),
            "1.2.3.4|/sign-in/email"
        );
        assert_eq!(bucket_key(None, "/sign-in/"), "no-trusted-ip|/sign-in");
        assert_eq!(bucket_key(Some(""), "/"), "no-trusted-ip|/");
        assert_eq!(
            bucket_key(Some("2001:0db8:abcd:0012:0000:0000:0000:0000"), "/x"),
            "2001:0db8:abcd:0012:0000:0000:0000:0000|/x"
        );
        assert_eq!(normalize_path("///"), "/");
        assert_eq!(normalize_path("/a//"), "/a");
    }
}
