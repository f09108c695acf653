//! The one wildcard matcher: IAM policy strings, `[[route]]` bucket patterns and the forward
//! proxy's host labels all match through [`glob`], so `*` and `?` mean the same everywhere and
//! no caller carries its own backtracking loop.
//!
//! Single-star backtracking: on a mismatch, only the most recent `*` is widened, which is
//! linear in practice and never exponential, whatever the pattern.

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok<T> {
    /// Exactly this element.
    Lit(T),
    /// Any one element (`?`).
    One,
    /// Any run of elements, empty included (`*`).
    Any,
}

/// Whether `value` matches `pattern` as a whole.
pub fn glob<T: PartialEq>(pattern: &[Tok<T>], value: &[T]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Tok::One) => (p, v) = (p + 1, v + 1),
            Some(Tok::Lit(c)) if *c == value[v] => (p, v) = (p + 1, v + 1),
            Some(Tok::Any) => {
                star = Some((p, v));
                p += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    star = Some((sp, sv + 1));
                    (p, v) = (sp + 1, sv + 1);
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|t| *t == Tok::Any)
}

/// `*` (any run) and `?` (one character) over the characters of `text`; every other
/// character stands for itself.
pub fn matches(pattern: &str, text: &str) -> bool {
    let toks: Vec<Tok<char>> = pattern
        .chars()
        .map(|c| match c {
            '*' => Tok::Any,
            '?' => Tok::One,
            c => Tok::Lit(c),
        })
        .collect();
    glob(&toks, &text.chars().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        for (p, t) in
            [("*", ""), ("*", "abc"), ("a*c", "abbbc"), ("a?c", "abc"), ("*-logs", "app-logs"), ("a*b*c", "a-b-b-c")]
        {
            assert!(matches(p, t), "{p} {t}");
        }
        for (p, t) in [("a?c", "ac"), ("a*c", "ab"), ("", "a"), ("a", ""), ("*-logs", "app-log"), ("a*b*c", "a-c-b")] {
            assert!(!matches(p, t), "{p} {t}");
        }
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let pattern = "*a".repeat(40) + "b";
        let text = "a".repeat(5000);
        assert!(!matches(&pattern, &text));
    }
}
