//! Reads a `#[simulator]` function into a [`Model`]: its rng, settings, prior sites and body.

use syn::parse::{Parse, ParseStream};
use syn::{Expr, FnArg, Ident, ItemFn, Macro, Pat, Stmt, Token, Type};

use crate::ctxt::Ctxt;

/// One prior site: `let name = sample!(dist);` or `let name = sample!(dist; size);`.
pub struct Site {
    pub ident: Ident,
    pub mutability: Option<Token![mut]>,
    pub ty: Option<Type>,
    pub dist: Expr,
    pub size: Option<Expr>,
    pub mac: Macro,
}

/// A fixed setting: a function argument other than the rng.
pub struct Setting {
    pub ident: Ident,
    pub ty: Type,
}

/// The rng argument.
pub struct RngArg {
    pub ident: Ident,
}

/// The parsed function.
pub struct Model {
    pub item: ItemFn,
    pub rng: Option<RngArg>,
    pub settings: Vec<Setting>,
    /// Items (`use`, `const`, `fn`) before the end of the prior and plain `let`s before the
    /// first site, visible to sites and body; run before the sites in every generated method.
    pub preamble: Vec<Stmt>,
    pub sites: Vec<Site>,
    /// Statements after the prior sites.
    pub body: Vec<Stmt>,
}

/// The arguments of `sample!`: a distribution and, for a vector site, `; N`.
pub struct SampleArgs {
    pub dist: Expr,
    pub size: Option<Expr>,
}

impl Parse for SampleArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let dist: Expr = input.parse()?;
        let size = if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        if !input.is_empty() {
            return Err(input.error("expected `sample!(DISTRIBUTION)` or `sample!(DISTRIBUTION; N)`"));
        }
        Ok(SampleArgs { dist, size })
    }
}

/// Whether a macro invocation is `sample!` (also `sbi_runtime::sample!`).
pub fn is_sample(mac: &Macro) -> bool {
    mac.path.segments.last().is_some_and(|s| s.ident == "sample")
}

/// The `sample!` macro that makes up the whole initialiser of a `let`, if any.
pub fn site_macro(stmt: &Stmt) -> Option<&Macro> {
    match stmt {
        Stmt::Local(local) => match local.init.as_ref()?.expr.as_ref() {
            Expr::Macro(m) if is_sample(&m.mac) => Some(&m.mac),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a type is `&mut impl Trait` or `&mut dyn Trait` (an rng argument).
fn is_rng_type(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => {
            matches!(&*r.elem, Type::ImplTrait(_) | Type::TraitObject(_))
                || matches!(&*r.elem, Type::Paren(p) if matches!(&*p.elem, Type::ImplTrait(_) | Type::TraitObject(_)))
        }
        _ => false,
    }
}

impl Model {
    /// Splits the function; records mistakes of form (patterns) in `cx`.
    pub fn from_item(cx: &Ctxt, item: ItemFn) -> Model {
        let mut rng = None;
        let mut settings = Vec::new();
        for arg in &item.sig.inputs {
            let FnArg::Typed(pt) = arg else { continue }; // receivers are reported by `valid`
            let Pat::Ident(pi) = &*pt.pat else {
                cx.error_spanned_by(
                    &pt.pat,
                    "arguments of a `#[simulator]` function must be plain names, e.g. `population: u32`",
                );
                continue;
            };
            if rng.is_none() && is_rng_type(&pt.ty) {
                rng = Some(RngArg { ident: pi.ident.clone() });
            } else {
                settings.push(Setting { ident: pi.ident.clone(), ty: (*pt.ty).clone() });
            }
        }

        // Items anywhere before the prior end, and plain `let`s before the first site, are the
        // preamble: values the sites' arguments and the simulator share. `let`s that no site
        // follows are simulator code.
        let mut preamble = Vec::new();
        let mut pending_lets = Vec::new();
        let mut sites = Vec::new();
        let mut body = Vec::new();
        let mut in_prior = true;
        for stmt in &item.block.stmts {
            if in_prior {
                if matches!(stmt, Stmt::Item(_)) {
                    preamble.push(stmt.clone());
                    continue;
                }
                if let Some(mac) = site_macro(stmt) {
                    preamble.append(&mut pending_lets);
                    if let Some(site) = parse_site(cx, stmt, mac) {
                        sites.push(site);
                    }
                    continue;
                }
                if sites.is_empty() && matches!(stmt, Stmt::Local(_)) {
                    pending_lets.push(stmt.clone());
                    continue;
                }
                in_prior = false;
                body.append(&mut pending_lets);
            }
            body.push(stmt.clone());
        }
        body.append(&mut pending_lets);
        Model { item, rng, settings, preamble, sites, body }
    }
}

/// Reads one prior statement; `None` (with an error) when its pattern or arguments are wrong.
fn parse_site(cx: &Ctxt, stmt: &Stmt, mac: &Macro) -> Option<Site> {
    let Stmt::Local(local) = stmt else { return None };
    let args = match mac.parse_body::<SampleArgs>() {
        Ok(a) => Some(a),
        Err(e) => {
            cx.syn_error(e);
            None
        }
    };
    if let Some(init) = &local.init
        && let Some((else_token, _)) = &init.diverge
    {
        cx.error_spanned_by(else_token, "a prior site cannot have an `else` branch: write `let name = sample!(...);`");
        return None;
    }
    let (pat, ty) = match &local.pat {
        Pat::Type(pt) => (&*pt.pat, Some((*pt.ty).clone())),
        p => (p, None),
    };
    let ident = match pat {
        Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => Some((pi.ident.clone(), pi.mutability)),
        other => {
            cx.error_spanned_by(
                other,
                "a prior site must bind one plain name, e.g. `let theta = sample!(...);` \
                 (use `sample!(DIST; N)` for a vector of N values)",
            );
            None
        }
    };
    let (ident, mutability) = ident?;
    let args = args?;
    Some(Site { ident, mutability, ty, dist: args.dist, size: args.size, mac: mac.clone() })
}
