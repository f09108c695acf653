//! Policy strings: `*` and `?` wildcards and `${...}` policy variables.
//!
//! A pattern is compiled once at load time. Variables are resolved per request into literal
//! characters, never into wildcards, so a user name like `a*` cannot widen a resource pattern.

use super::{lookup, Context};

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Char(char),
    AnyString,
    AnyChar,
    /// A policy variable: the context key (any case) and the value used when it is absent.
    Var {
        key: String,
        default: Option<String>,
    },
}

/// A compiled policy string (Action, Resource, or a condition value).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pattern {
    parts: Vec<Part>,
}

type Tok = crate::glob::Tok<char>;

impl Pattern {
    /// `wildcards`: whether `*`/`?` match anything (Action, Resource, StringLike) or only
    /// themselves (StringEquals). `variables`: whether `${...}` is a policy variable, which
    /// IAM only does for `"Version": "2012-10-17"`; older documents mean it literally.
    pub(super) fn compile(text: &str, wildcards: bool, variables: bool) -> Result<Self, String> {
        let mut parts = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let end = rest.find('}').ok_or_else(|| format!("unterminated policy variable in {text:?}"))?;
                parts.push(variable(&rest[2..end])?);
                rest = &rest[end + 1..];
                continue;
            }
            parts.push(match c {
                '*' if wildcards => Part::AnyString,
                '?' if wildcards => Part::AnyChar,
                c => Part::Char(c),
            });
            rest = &rest[c.len_utf8()..];
        }
        Ok(Self { parts })
    }

    /// Whether `value` matches. `fold_case` compares case-insensitively (actions,
    /// StringEqualsIgnoreCase). A variable missing from the context, with no default, makes the
    /// pattern match nothing, as in IAM.
    pub(super) fn matches(&self, value: &str, context: &Context, fold_case: bool) -> bool {
        let mut toks = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            match part {
                Part::Char(c) => toks.push(Tok::Lit(*c)),
                Part::AnyString => toks.push(Tok::Any),
                Part::AnyChar => toks.push(Tok::One),
                Part::Var { key, default } => {
                    let resolved = match lookup(context, key) {
                        Some([one]) => one.as_str(),
                        // A multi-valued key has no single value to substitute.
                        Some(_) => return false,
                        None => match default {
                            Some(default) => default.as_str(),
                            None => return false,
                        },
                    };
                    toks.extend(resolved.chars().map(Tok::Lit));
                }
            }
        }
        if fold_case {
            let toks: Vec<Tok> = toks
                .into_iter()
                .flat_map(|t| match t {
                    Tok::Lit(c) => c.to_lowercase().map(Tok::Lit).collect(),
                    other => vec![other],
                })
                .collect();
            let value: Vec<char> = value.chars().flat_map(char::to_lowercase).collect();
            crate::glob::glob(&toks, &value)
        } else {
            crate::glob::glob(&toks, &value.chars().collect::<Vec<_>>())
        }
    }
}

/// `${key}`, `${key, 'default'}`, or the escapes `${*}`, `${?}`, `${$}` for a literal character.
fn variable(inner: &str) -> Result<Part, String> {
    match inner.trim() {
        "*" => return Ok(Part::Char('*')),
        "?" => return Ok(Part::Char('?')),
        "$" => return Ok(Part::Char('$')),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let quoted = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .ok_or_else(|| format!("policy variable default must be quoted: ${{{inner}}}"))?;
            (key.trim(), Some(quoted.to_owned()))
        }
        None => (inner.trim(), None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("invalid policy variable ${{{inner}}}"));
    }
    Ok(Part::Var { key: key.to_owned(), default })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        pairs.iter().map(|(k, v)| (k.to_string(), vec![v.to_string()])).collect()
    }

    fn like(pattern: &str, value: &str) -> bool {
        let p = Pattern::compile(pattern, true, true).expect("pattern");
        p.matches(value, &ctx(&[("aws:username", "al*ce")]), false)
    }

    #[test]
    fn wildcards() {
        assert!(like("*", ""));
        assert!(like("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y"));
        assert!(!like("arn:aws:s3:::b/*", "arn:aws:s3:::bb/x"));
        assert!(like("a?c*f", "abcdef"));
        assert!(!like("a?c", "ac"));
        assert!(like("*a*b*c", "xxaxxbxxbc"));
        assert!(like("日?本*", "日x本語"));
    }

    #[test]
    fn variables_resolve_to_literals() {
        assert!(like("home/${aws:username}/*", "home/al*ce/x"));
        assert!(!like("home/${aws:username}/*", "home/alice/x"));
        assert!(!like("home/${aws:userid}/*", "home/x/y"));
        assert!(like("home/${aws:userid, 'anon'}/*", "home/anon/y"));
        assert!(like("lit${*}${?}${$}", "lit*?$"));
        assert!(!like("lit${*}", "litx"));
        let old = Pattern::compile("${aws:username}", true, false).expect("pattern");
        assert!(old.matches("${aws:username}", &ctx(&[]), false));
        assert!(Pattern::compile("${aws:username", true, true).is_err());
        assert!(Pattern::compile("${a, b}", true, true).is_err());
    }

    #[test]
    fn literal_and_case_folding() {
        let p = Pattern::compile("s3:Get*", false, false).expect("pattern");
        assert!(p.matches("s3:Get*", &ctx(&[]), false));
        assert!(!p.matches("s3:GetObject", &ctx(&[]), false));
        let p = Pattern::compile("S3:get*", true, false).expect("pattern");
        assert!(p.matches("s3:GetObject", &ctx(&[]), true));
        assert!(!p.matches("s3:GetObject", &ctx(&[]), false));
    }
}
