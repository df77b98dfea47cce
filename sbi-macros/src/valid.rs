//! The rules of the language, one documented function each. Every rule records its errors
//! in the [`Ctxt`] and lets the others run, so one build shows every mistake.

use std::collections::HashMap;

use quote::{ToTokens, quote};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ItemFn, Lit, ReturnType, Stmt, Type, UnOp};

use crate::ast::{Model, SampleArgs, is_sample, site_macro};
use crate::ctxt::Ctxt;

/// Rules on the signature: not async, not generic, not a method, has an rng, returns something.
/// Returns `false` when the function cannot be expanded at all.
pub fn signature(cx: &Ctxt, item: &ItemFn, model: &Model) -> bool {
    let sig = &item.sig;
    let mut ok = true;
    if let Some(a) = &sig.asyncness {
        cx.error_spanned_by(
            a,
            "a `#[simulator]` function cannot be `async`: simulations run in parallel on a thread pool",
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let g = &sig.generics;
        let w = &g.where_clause;
        cx.error_spanned_by(
            quote!(#g #w),
            "a `#[simulator]` function cannot be generic: the generated structs need concrete types \
             (take the rng as `rng: &mut impl Rng` and give settings concrete types)",
        );
        ok = false;
    }
    if let Some(receiver) = sig.receiver() {
        cx.error_spanned_by(
            receiver,
            "`#[simulator]` applies to a free function, not a method: remove `self` and move the function out of the `impl` block",
        );
        ok = false;
    }
    if model.rng.is_none() && sig.receiver().is_none() {
        cx.syn_error(syn::Error::new(
            sig.paren_token.span.join(),
            "a `#[simulator]` function needs a random number generator argument: add `rng: &mut impl Rng`",
        ));
        ok = false;
    }
    match &sig.output {
        ReturnType::Default => {
            cx.syn_error(syn::Error::new(
                sig.paren_token.span.join(),
                "a `#[simulator]` function must return its observation, e.g. `-> [f64; 2]`",
            ));
            ok = false;
        }
        ReturnType::Type(_, ty) => match &**ty {
            Type::ImplTrait(_) => {
                cx.error_spanned_by(ty, "the observation type must be named (e.g. `Vec<f64>`), not `impl Trait`");
                ok = false;
            }
            Type::Tuple(t) if t.elems.is_empty() => {
                cx.error_spanned_by(ty, "a `#[simulator]` function must return its observation, not `()`");
                ok = false;
            }
            _ => {}
        },
    }
    ok
}

/// Each site name is used once, and differs from the arguments' names.
/// Duplicates are removed from the model so that they do not cascade into other errors.
pub fn unique_names(cx: &Ctxt, model: &mut Model) {
    let mut seen: HashMap<String, &'static str> = HashMap::new();
    if let Some(rng) = &model.rng {
        seen.insert(rng.ident.to_string(), "the rng argument");
    }
    for s in &model.settings {
        seen.insert(s.ident.to_string(), "a setting (a function argument)");
    }
    model.sites.retain(|site| {
        let name = site.ident.to_string();
        match seen.get(&name) {
            Some(&"a prior site") => {
                cx.error_spanned_by(
                    &site.ident,
                    format!("prior site `{name}` is declared twice: each site needs its own name"),
                );
                false
            }
            Some(other) => {
                cx.error_spanned_by(
                    &site.ident,
                    format!("`{name}` is already {other}: a prior site needs a name of its own"),
                );
                false
            }
            None => {
                seen.insert(name, "a prior site");
                true
            }
        }
    });
}

/// A vector site has at least one coordinate.
pub fn vector_sizes(cx: &Ctxt, model: &Model) {
    for site in &model.sites {
        if let Some(size) = &site.size
            && literal_value(size) == Some(0.0)
        {
            cx.error_spanned_by(size, "a vector site needs at least one value: `sample!(DIST; N)` with N ≥ 1");
        }
    }
}

/// How the arguments of a built-in distribution are constrained.
enum Rule {
    /// The first argument is below the second.
    Ordered,
    /// These arguments are positive.
    Positive(&'static [usize]),
    /// Not checkable from literals.
    Free,
}

/// A built-in distribution's short form: `Name(arg, ...)` inside `sample!`.
pub struct ShortForm {
    pub name: &'static str,
    params: &'static [&'static str],
    rule: Rule,
}

const SHORT_FORMS: &[ShortForm] = &[
    ShortForm { name: "Uniform", params: &["low", "high"], rule: Rule::Ordered },
    ShortForm { name: "Normal", params: &["mean", "std"], rule: Rule::Positive(&[1]) },
    ShortForm { name: "LogNormal", params: &["mu", "sigma"], rule: Rule::Positive(&[1]) },
    ShortForm { name: "Gamma", params: &["shape", "rate"], rule: Rule::Positive(&[0, 1]) },
    ShortForm { name: "Beta", params: &["a", "b"], rule: Rule::Positive(&[0, 1]) },
    ShortForm { name: "Exponential", params: &["rate"], rule: Rule::Positive(&[0]) },
    ShortForm { name: "HalfNormal", params: &["scale"], rule: Rule::Positive(&[0]) },
    ShortForm { name: "MultivariateNormal", params: &["mean", "covariance"], rule: Rule::Free },
];

/// The built-in short form a call expression names, if any (`Uniform(..)`, not `my::Uniform(..)`).
pub fn short_form(call: &syn::ExprCall) -> Option<&'static ShortForm> {
    let Expr::Path(p) = &*call.func else { return None };
    if p.qself.is_some() || p.path.leading_colon.is_some() || p.path.segments.len() != 1 {
        return None;
    }
    let seg = &p.path.segments[0];
    if !seg.arguments.is_none() {
        return None;
    }
    SHORT_FORMS.iter().find(|f| seg.ident == f.name)
}

/// The value of a numeric literal, possibly negated or parenthesised.
pub fn literal_value(e: &Expr) -> Option<f64> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Float(f) => f.base10_parse().ok(),
            Lit::Int(i) => i.base10_parse::<f64>().ok(),
            _ => None,
        },
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => literal_value(&u.expr).map(|v| -v),
        Expr::Paren(p) => literal_value(&p.expr),
        Expr::Group(g) => literal_value(&g.expr),
        _ => None,
    }
}

/// Built-in distributions get the right number of arguments, and literal arguments that can
/// never be valid (`Uniform(1.0, -1.0)`, `Normal(0.0, -2.0)`, `Gamma(0.0, 1.0)`) are errors.
pub fn literal_arguments(cx: &Ctxt, model: &Model) {
    for site in &model.sites {
        let Expr::Call(call) = &site.dist else { continue };
        let Some(form) = short_form(call) else { continue };
        let args: Vec<&Expr> = call.args.iter().collect();
        if args.len() != form.params.len() {
            cx.error_spanned_by(
                call,
                format!(
                    "`{}` takes {} argument{} ({}), got {}",
                    form.name,
                    form.params.len(),
                    if form.params.len() == 1 { "" } else { "s" },
                    form.params.join(", "),
                    args.len()
                ),
            );
            continue;
        }
        let text = |e: &Expr| e.to_token_stream().to_string().replace("- ", "-");
        match form.rule {
            Rule::Ordered => {
                if let (Some(lo), Some(hi)) = (literal_value(args[0]), literal_value(args[1]))
                    && lo >= hi
                {
                    cx.error_spanned_by(
                        &call.args,
                        format!(
                            "`{}({}, {})` can never be valid: `{}` must be below `{}`",
                            form.name,
                            text(args[0]),
                            text(args[1]),
                            form.params[0],
                            form.params[1]
                        ),
                    );
                }
            }
            Rule::Positive(which) => {
                for &i in which {
                    if let Some(v) = literal_value(args[i])
                        && v <= 0.0
                    {
                        cx.error_spanned_by(
                            args[i],
                            format!("`{}` of `{}` must be positive, got {}", form.params[i], form.name, text(args[i])),
                        );
                    }
                }
            }
            Rule::Free => {}
        }
    }
}

/// Where a misplaced `sample!` stands.
#[derive(Clone, Copy)]
enum Place {
    TopLevel,
    Loop,
    Closure,
    Branch,
    Block,
    SiteArgument,
}

impl Place {
    fn message(self) -> &'static str {
        match self {
            Place::TopLevel => {
                "`sample!` must be the whole right-hand side of a `let` at the start of the function, \
                 e.g. `let theta = sample!(Normal(0.0, 1.0));`"
            }
            Place::Loop => {
                "`sample!` cannot be used inside a loop: prior sites are declared once, at the start of the function \
                 (for several values use a vector site, `let w = sample!(DIST; N);`)"
            }
            Place::Closure => {
                "`sample!` cannot be used inside a closure: declare the prior site with `let` at the start of the function"
            }
            Place::Branch => {
                "`sample!` cannot be used inside `if` or `match`: every run must have the same prior sites \
                 (declare the site at the start of the function and use its value in the branch)"
            }
            Place::Block => {
                "`sample!` cannot be used inside a nested block: declare prior sites with `let` at the top level of the function"
            }
            Place::SiteArgument => {
                "`sample!` cannot be used inside another site's distribution: declare it as a site of its own first"
            }
        }
    }
}

/// `sample!` appears only as a prior statement: never inside a loop, closure, branch, nested
/// block or another site's arguments, and never after simulator code. Each misplaced use is
/// reported and replaced by a typed placeholder, so that it causes no further error.
pub fn misplaced_samples(cx: &Ctxt, model: &mut Model) {
    let mut finder = Misplaced { cx, places: vec![Place::SiteArgument] };
    for site in &mut model.sites {
        finder.visit_expr_mut(&mut site.dist);
        if let Some(size) = &mut site.size {
            finder.visit_expr_mut(size);
        }
    }
    finder.places = vec![Place::TopLevel];
    for stmt in &mut model.preamble {
        finder.visit_stmt_mut(stmt);
    }
    for stmt in &mut model.body {
        if let Some(mac) = site_macro(stmt) {
            cx.error_spanned_by(
                mac,
                "prior sites must come first: this `sample!` follows simulator code \
                 (move it above the first statement that is not a prior site)",
            );
            let placeholder = placeholder(mac);
            if let Stmt::Local(local) = stmt
                && let Some(init) = &mut local.init
            {
                *init.expr = placeholder;
            }
            continue;
        }
        finder.visit_stmt_mut(stmt);
    }
}

/// A placeholder of the site's type (`f64` or `[f64; N]`) for a misplaced `sample!`.
fn placeholder(mac: &syn::Macro) -> Expr {
    match mac.parse_body::<SampleArgs>().ok().and_then(|a| a.size) {
        Some(n) => syn::parse_quote!(::sbi_runtime::__private::misplaced_vector::<{ #n }>()),
        None => syn::parse_quote!(::sbi_runtime::__private::misplaced_scalar()),
    }
}

struct Misplaced<'a> {
    cx: &'a Ctxt,
    places: Vec<Place>,
}

impl Misplaced<'_> {
    fn report(&self, mac: &syn::Macro) -> Expr {
        let place = *self.places.last().expect("a place is always set");
        self.cx.error_spanned_by(mac, place.message());
        placeholder(mac)
    }

    fn within(&mut self, place: Place, f: impl FnOnce(&mut Self)) {
        self.places.push(place);
        f(self);
        self.places.pop();
    }
}

impl VisitMut for Misplaced<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Expr::Macro(m) = e
            && is_sample(&m.mac)
        {
            *e = self.report(&m.mac);
            return;
        }
        let place = match e {
            Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_) => Some(Place::Loop),
            Expr::Closure(_) => Some(Place::Closure),
            Expr::If(_) | Expr::Match(_) => Some(Place::Branch),
            Expr::Block(_) | Expr::Unsafe(_) | Expr::Async(_) | Expr::Const(_) | Expr::TryBlock(_) => {
                Some(Place::Block)
            }
            _ => None,
        };
        match place {
            Some(p) => self.within(p, |s| visit_mut::visit_expr_mut(s, e)),
            None => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(m) = stmt
            && is_sample(&m.mac)
        {
            let e = self.report(&m.mac);
            *stmt = Stmt::Expr(e, m.semi_token);
            return;
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }

    fn visit_item_mut(&mut self, item: &mut syn::Item) {
        self.within(Place::Block, |s| visit_mut::visit_item_mut(s, item));
    }
}

/// A `let` before the prior sites does not use the rng: it runs whenever the prior is
/// evaluated or drawn from, so a random value there would be an undeclared prior draw.
pub fn preamble_without_rng(cx: &Ctxt, model: &Model) {
    let Some(rng) = &model.rng else { return };
    for stmt in &model.preamble {
        let Stmt::Local(local) = stmt else { continue };
        let mut finder = FindIdent { target: &rng.ident, found: None };
        syn::visit::visit_local(&mut finder, local);
        if let Some(use_site) = finder.found {
            cx.error_spanned_by(
                use_site,
                format!(
                    "a `let` before the prior sites cannot use `{}`: it runs whenever the prior is evaluated, \
                     so a random value here would be an undeclared prior draw \
                     (declare it as a site with `sample!`, or move this `let` below the prior sites)",
                    rng.ident
                ),
            );
        }
    }
}

/// Finds the first use of one identifier.
struct FindIdent<'a> {
    target: &'a syn::Ident,
    found: Option<syn::Ident>,
}

impl<'ast> syn::visit::Visit<'ast> for FindIdent<'_> {
    fn visit_ident(&mut self, id: &'ast syn::Ident) {
        if self.found.is_none() && id == self.target {
            self.found = Some(id.clone());
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Macro bodies are token streams: look for the name among their tokens.
        fn scan(tokens: proc_macro2::TokenStream, finder: &mut FindIdent) {
            for tt in tokens {
                match tt {
                    proc_macro2::TokenTree::Ident(id) => finder.visit_ident(&id),
                    proc_macro2::TokenTree::Group(g) => scan(g.stream(), finder),
                    _ => {}
                }
            }
        }
        syn::visit::visit_path(self, &mac.path);
        scan(mac.tokens.clone(), self);
    }
}
