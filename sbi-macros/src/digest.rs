//! A digest of the model's source: the function's signature and body as tokens, without
//! spacing, comments or attributes (so reformatting or a new doc comment keeps it, and any
//! change of code changes it), plus this crate's version (whose expansion is part of the
//! model). Stored in simulation checkpoints and model files to recognise another model.

use std::hash::Hasher;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The digest of `tokens`, as 16 hex digits. FNV-1a (the `fnv` crate) because its output is
/// fixed by its definition: std's hasher may change between Rust releases, and the digest
/// is compared with ones stored in files.
pub fn digest(tokens: TokenStream) -> String {
    let mut h = fnv::FnvHasher::default();
    h.write(b"sbi-macros ");
    h.write(env!("CARGO_PKG_VERSION").as_bytes());
    walk(tokens, &mut h);
    format!("{:016x}", h.finish())
}

fn walk(tokens: TokenStream, h: &mut fnv::FnvHasher) {
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("\u{2}", "\u{3}"),
                };
                h.write(open.as_bytes());
                walk(g.stream(), h);
                h.write(close.as_bytes());
            }
            TokenTree::Ident(i) => {
                h.write(b"\x01i");
                h.write(i.to_string().as_bytes());
            }
            TokenTree::Punct(p) => {
                h.write(b"\x01p");
                h.write(p.as_char().to_string().as_bytes());
            }
            TokenTree::Literal(l) => {
                h.write(b"\x01l");
                h.write(l.to_string().as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_does_not_matter_and_code_does() {
        let a: TokenStream = "fn f(x: f64) -> f64 { x + 1.0 }".parse().unwrap();
        let b: TokenStream = "fn f( x : f64 )->f64{x+1.0}".parse().unwrap();
        let c: TokenStream = "fn f(x: f64) -> f64 { x + 2.0 }".parse().unwrap();
        let d: TokenStream = "fn f(x: f64) -> f64 { (x + 1.0) }".parse().unwrap();
        assert_eq!(digest(a.clone()), digest(b));
        assert_ne!(digest(a.clone()), digest(c));
        assert_ne!(digest(a), digest(d));
    }
}
