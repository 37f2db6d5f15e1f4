//! SCAN `MATCH` escaping: turning literal bytes into a Redis glob that matches only them.
//!
//! Redis globs treat `*`, `?`, `[`, `]` and `\` as special; a prefix such as `app[1]:`
//! must not match `app1:`. Escaping each special byte with `\` makes the prefix literal.
//! The property test below checks the result against a port of Redis's own matcher
//! (`stringmatchlen` in `util.c`).

/// The bytes Redis's glob matcher treats as special.
pub const SPECIAL: [u8; 5] = [b'*', b'?', b'[', b']', b'\\'];

/// Escapes `literal` so that, used as a glob, it matches exactly these bytes.
pub fn escape(literal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(literal.len() + 8);
    for &b in literal {
        if SPECIAL.contains(&b) {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
pub(crate) mod redis_glob {
    //! A faithful port of Redis's `stringmatchlen` (case-sensitive), for tests only.

    /// Whether `pattern` matches all of `s` under Redis's glob rules.
    pub(crate) fn matches(pattern: &[u8], s: &[u8]) -> bool {
        let mut skip_longer = false;
        imp(pattern, s, &mut skip_longer)
    }

    fn imp(mut p: &[u8], mut s: &[u8], skip_longer: &mut bool) -> bool {
        while !p.is_empty() && !s.is_empty() {
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    while !s.is_empty() {
                        if imp(&p[1..], s, skip_longer) {
                            return true;
                        }
                        if *skip_longer {
                            return false;
                        }
                        s = &s[1..];
                    }
                    *skip_longer = true;
                    return false;
                }
                b'?' => s = &s[1..],
                b'[' => {
                    p = &p[1..];
                    let not = p.first() == Some(&b'^');
                    if not {
                        p = &p[1..];
                    }
                    let mut matched = false;
                    loop {
                        if p.first() == Some(&b'\\') && p.len() >= 2 {
                            p = &p[1..];
                            if p[0] == s[0] {
                                matched = true;
                            }
                        } else if p.first() == Some(&b']') {
                            break;
                        } else if p.is_empty() {
                            // Unterminated class: Redis steps back so the outer
                            // `pattern++` lands on the end. Mirror that below.
                            break;
                        } else if p.len() >= 3 && p[1] == b'-' {
                            let (mut lo, mut hi) = (p[0], p[2]);
                            if lo > hi {
                                std::mem::swap(&mut lo, &mut hi);
                            }
                            p = &p[2..];
                            if s[0] >= lo && s[0] <= hi {
                                matched = true;
                            }
                        } else if p[0] == s[0] {
                            matched = true;
                        }
                        p = &p[1..];
                    }
                    if not {
                        matched = !matched;
                    }
                    if !matched {
                        return false;
                    }
                    s = &s[1..];
                    if p.is_empty() {
                        // Redis: `pattern--` then the common `pattern++`.
                        if s.is_empty() {
                            return true;
                        }
                        return false;
                    }
                }
                b'\\' if p.len() >= 2 => {
                    p = &p[1..];
                    if p[0] != s[0] {
                        return false;
                    }
                    s = &s[1..];
                }
                c => {
                    if c != s[0] {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p = &p[1..];
            if s.is_empty() {
                while p.first() == Some(&b'*') {
                    p = &p[1..];
                }
                break;
            }
        }
        p.is_empty() && s.is_empty()
    }

    #[test]
    fn matcher_agrees_with_redis_examples() {
        let yes: &[(&str, &str)] = &[
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("a\\*b", "a*b"),
            ("a*", "a"),
            ("\\[x\\]*", "[x]yz"),
        ];
        let no: &[(&str, &str)] = &[
            ("h[ae]llo", "hillo"),
            ("h[^e]llo", "hello"),
            ("a\\*b", "axb"),
            ("a?", "a"),
            ("\\[x\\]*", "xyz"),
        ];
        for (p, s) in yes {
            assert!(matches(p.as_bytes(), s.as_bytes()), "{p} should match {s}");
        }
        for (p, s) in no {
            assert!(
                !matches(p.as_bytes(), s.as_bytes()),
                "{p} should not match {s}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redis_glob::matches;
    use super::*;
    use crate::keys::{KeyCodec, Namespace, Prefix};
    use proptest::prelude::*;

    #[test]
    fn escape_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"plain:", b"plain:"),
            (b"*", b"\\*"),
            (b"a?b", b"a\\?b"),
            (b"[x]", b"\\[x\\]"),
            (b"back\\slash", b"back\\\\slash"),
            (b"^-!", b"^-!"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), *want);
        }
    }

    fn glob_heavy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('*'),
                Just('?'),
                Just('['),
                Just(']'),
                Just('\\'),
                Just('^'),
                Just('-'),
                Just(':'),
                Just('a'),
                Just('b'),
                any::<char>(),
            ],
            0..12,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The SCAN pattern of a namespace matches a key iff the key lies in that namespace.
        #[test]
        fn scan_pattern_matches_exactly_the_namespace(
            prefix in glob_heavy().prop_filter("valid prefix", |p| Prefix::new(p.clone()).is_ok()),
            other_prefix in glob_heavy(),
            logical in glob_heavy(),
            noise in proptest::collection::vec(any::<u8>(), 0..16),
            pick in 0u8..4,
        ) {
            let codec = KeyCodec::new(Prefix::new(prefix.clone()).unwrap());
            let ns = codec.namespace(Namespace::Secondary);
            let key: Vec<u8> = match pick {
                0 => [ns.as_bytes(), logical.as_bytes()].concat(),
                1 => [other_prefix.as_bytes(), b"secondary:", logical.as_bytes()].concat(),
                2 => [prefix.as_bytes(), b"rate-limit:", logical.as_bytes()].concat(),
                _ => noise.clone(),
            };
            let pattern = codec.scan_pattern(Namespace::Secondary);
            prop_assert_eq!(
                matches(&pattern, &key),
                key.starts_with(ns.as_bytes()),
                "pattern {:?} key {:?}", String::from_utf8_lossy(&pattern), String::from_utf8_lossy(&key)
            );
        }
    }
}
