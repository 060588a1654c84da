//! Text in the order a person reads it: numbers by their value, so that `n_images=250` comes
//! before `n_images=1000` and `hidden=512` before `hidden=1024` (the report's lists of cells).
//!
//! ```
//! use pcmem_harness::natural::Natural;
//! let mut names: Vec<Natural> = ["n=1000", "n=250", "n=100", "top:0.5", "top:0.25"]
//!     .into_iter()
//!     .map(Natural::from)
//!     .collect();
//! names.sort();
//! let text: Vec<&str> = names.iter().map(|n| n.0.as_str()).collect();
//! assert_eq!(text, ["n=100", "n=250", "n=1000", "top:0.25", "top:0.5"]);
//! ```

use std::cmp::Ordering;

/// A string ordered with its numbers (`123`, `0.25`) compared by value and the rest as text;
/// strings that read as the same numbers (`1.0`, `1`) fall back to their text, so the order is
/// total and equal only for equal strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Natural(pub String);

impl From<&str> for Natural {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for Natural {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Display for Natural {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ord for Natural {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (chunks(&self.0), chunks(&other.0));
        for (x, y) in a.iter().zip(&b) {
            let o = match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) if is_number(x) && is_number(y) => {
                    p.partial_cmp(&q).unwrap_or(Ordering::Equal)
                }
                _ => x.cmp(y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.len().cmp(&b.len()).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Natural {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn is_number(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
}

/// `s` cut into numbers (digits, with one decimal point between digits) and the text between.
fn chunks(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < b.len() {
        if b[i].is_ascii_digit() {
            if start < i {
                out.push(&s[start..i]);
            }
            let from = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push(&s[from..i]);
            start = i;
        } else {
            i += 1;
        }
    }
    if start < b.len() {
        out.push(&s[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{chunks, Natural};

    #[test]
    fn numbers_are_cut_out_whole() {
        assert_eq!(
            chunks("dataset=cifar10,n_images=250"),
            ["dataset=cifar", "10", ",n_images=", "250"]
        );
        assert_eq!(chunks("top:0.25"), ["top:", "0.25"]);
        assert_eq!(chunks("1.5.2"), ["1.5", ".", "2"]);
        assert_eq!(chunks(""), Vec::<&str>::new());
    }

    #[test]
    fn numbers_order_by_value_and_the_order_is_total() {
        let n = |s: &str| Natural::from(s);
        assert!(n("n_images=250") < n("n_images=1000"));
        assert!(n("hidden=512") < n("hidden=1024"));
        assert!(n("noise:0.01") < n("noise:0.2"));
        assert!(n("dataset=cifar10,n_images=500") < n("dataset=tiny-imagenet,n_images=100"));
        assert!(n("a") < n("a1") && n("a1") < n("b"));
        // Equal only when the text is.
        assert!(n("1") < n("1.0") || n("1.0") < n("1"));
        assert_eq!(n("x7"), n("x7"));
    }
}
