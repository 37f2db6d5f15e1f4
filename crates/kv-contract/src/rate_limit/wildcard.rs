//! Better Auth's `customRules` wildcards, exactly: a port of the `wildcardMatch` it uses
//! (`better-auth/dist/utils/wildcard.mjs`, itself from the `wildcard-match` package, with
//! `/` as separator), identical in 1.6.9 and 1.7.25.
//!
//! A pattern is split at `/` into segments; the regular expression upstream builds is
//! reproduced token by token, then matched as a whole string:
//!
//! - `?` is one character other than `/` and `\`; `*` any run of them;
//! - `\c` is `c` literally;
//! - a `/` between segments is *one or more* separators (`/` or `\`), and after the last
//!   segment *zero or more*, so `//` in a pattern is one separator and a trailing one is
//!   optional;
//! - a `**` segment is any number of whole segments, including none: `/x/**` matches
//!   `/x`, and `/x/**/y` matches `/x/y`.
//!
//! Better Auth calls it only for patterns containing `*`; others are compared exactly.

/// One piece of the regular expression upstream builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// A literal character.
    Char(char),
    /// `[^/\\]`.
    One,
    /// `[^/\\]*?`.
    Many,
    /// `[/\\]+?`: a required separator.
    SepPlus,
    /// `[/\\]*?`: an optional separator.
    SepStar,
    /// `(?:[^/\\]*?SEP)*?` with SEP one of the separators: any run of whole segments.
    Segments {
        /// Whether each repetition's separator is required (`+`) or optional (`*`).
        required: bool,
    },
}

fn is_sep(c: char) -> bool {
    c == '/' || c == '\\'
}

/// The tokens of `pattern`, as `transform(pattern, true)` builds its expression.
pub(crate) fn compile(pattern: &str) -> Vec<Token> {
    let segments: Vec<&str> = pattern.split('/').collect();
    let mut out = Vec::new();
    for (s, segment) in segments.iter().enumerate() {
        if segment.is_empty() && s > 0 {
            continue;
        }
        let sep = if s == segments.len() - 1 {
            Some(Token::SepStar)
        } else if segments[s + 1] != "**" {
            Some(Token::SepPlus)
        } else {
            None
        };
        if *segment == "**" {
            if let Some(sep) = sep {
                if s != 0 {
                    out.push(sep);
                }
                out.push(Token::Segments {
                    required: sep == Token::SepPlus,
                });
            }
            continue;
        }
        let mut chars = segment.chars();
        while let Some(c) = chars.next() {
            match c {
                // A trailing lone backslash is dropped, as upstream.
                '\\' => out.extend(chars.next().map(Token::Char)),
                '?' => out.push(Token::One),
                '*' => out.push(Token::Many),
                c => out.push(Token::Char(c)),
            }
        }
        out.extend(sep);
    }
    out
}

/// Whole-string match of `tokens` against `s`: memoised backtracking, O(tokens × len²).
pub(crate) fn matches(tokens: &[Token], s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let mut memo = vec![None; (tokens.len() + 1) * (chars.len() + 1)];
    Matcher {
        tokens,
        s: &chars,
        memo: Some(&mut memo),
    }
    .at(0, 0)
}

struct Matcher<'a> {
    tokens: &'a [Token],
    s: &'a [char],
    memo: Option<&'a mut Vec<Option<bool>>>,
}

impl Matcher<'_> {
    /// The end positions of a run of characters satisfying `ok` starting at `p`, with at
    /// least `min` of them.
    fn run_ends(
        &self,
        p: usize,
        min: usize,
        ok: fn(char) -> bool,
    ) -> std::ops::RangeInclusive<usize> {
        let len = self.s[p..].iter().take_while(|c| ok(**c)).count();
        if len < min {
            #[allow(clippy::reversed_empty_ranges)] // deliberately empty
            return 1..=0;
        }
        p + min..=p + len
    }

    fn at(&mut self, t: usize, p: usize) -> bool {
        let width = self.s.len() + 1;
        if let Some(memo) = self.memo.as_deref() {
            if let Some(known) = memo[t * width + p] {
                return known;
            }
        }
        let result = self.compute(t, p);
        if let Some(memo) = self.memo.as_deref_mut() {
            memo[t * width + p] = Some(result);
        }
        result
    }

    fn compute(&mut self, t: usize, p: usize) -> bool {
        let Some(&token) = self.tokens.get(t) else {
            return p == self.s.len();
        };
        let not_sep = |c: char| !is_sep(c);
        match token {
            Token::Char(c) => self.s.get(p) == Some(&c) && self.at(t + 1, p + 1),
            Token::One => self.s.get(p).is_some_and(|c| !is_sep(*c)) && self.at(t + 1, p + 1),
            Token::Many => self.run_ends(p, 0, not_sep).any(|q| self.at(t + 1, q)),
            Token::SepPlus => self.run_ends(p, 1, is_sep).any(|q| self.at(t + 1, q)),
            Token::SepStar => self.run_ends(p, 0, is_sep).any(|q| self.at(t + 1, q)),
            Token::Segments { required } => {
                if self.at(t + 1, p) {
                    return true;
                }
                // One more repetition (a non-empty one: an empty one changes nothing).
                let min = usize::from(required);
                for q in self.run_ends(p, 0, not_sep) {
                    for r in self.run_ends(q, min, is_sep) {
                        if r > p && self.at(t, r) {
                            return true;
                        }
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Each answer is `wildcardMatch(pattern)(sample)` of better-auth 1.7.25 (Node 20),
    /// identical in 1.6.9.
    #[test]
    fn agrees_with_better_auth() {
        for (pattern, sample, upstream) in [
            ("/x/**", "/x", true),
            ("/x/**", "/x/", true),
            ("/x/**", "/x/a/b", true),
            ("/x/**", "/y/x/a", false),
            ("/x/*", "/x", false),
            ("/x/*", "/x/a/b", false),
            ("/x/*", "/x\\a", true),
            ("/x/**/y", "/x/y", true),
            ("/x*", "/x/y", false),
            ("/x?", "/xa", true),
            ("/x?y", "/xay", true),
            ("/a\\*b", "/a*b", true),
            ("/a\\*b", "/axb", false),
            ("/x/*/", "/x/a", false),
            ("/x//y", "/x/y", true),
            ("/a/*", "/a/b", true),
            ("/a/*", "/a/", true),
            ("/a/*", "/a/b/c", false),
            ("/*/x", "/abc/x", true),
            ("/*/x", "/a/b/x", false),
            ("*", "abc", true),
            ("/a*b*c", "/a--b--c", true),
            ("/a*b*c", "/a--b--", false),
            ("/sign-in/**", "/sign-in/email", true),
        ] {
            assert_eq!(
                matches(&compile(pattern), sample),
                upstream,
                "{pattern:?} on {sample:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn memo_agrees_with_plain_backtracking(pattern in "[/ab*?]{0,8}", sample in "[/ab]{0,8}") {
            let tokens = compile(&pattern);
            let chars: Vec<char> = sample.chars().collect();
            let plain = Matcher { tokens: &tokens, s: &chars, memo: None }.at(0, 0);
            prop_assert_eq!(matches(&tokens, &sample), plain);
        }
    }
}
