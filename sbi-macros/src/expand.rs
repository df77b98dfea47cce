//! Writes the code of a model: the user's function (now a thin wrapper), `…Params`,
//! the simulator struct, `…Prior`, and their trait impls. Every token of the user's body
//! and of each distribution appears exactly once in the output, so a type error in user
//! code is reported once, at the user's span.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident, ItemFn, Lit, LitFloat, ReturnType, Type};

use crate::ast::{Model, Site};
use crate::ctxt::Ctxt;
use crate::valid;

/// Entry point of `#[simulator]`.
pub fn simulator(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "`#[simulator]` applies to a function (`fn name(rng: &mut impl Rng) -> ...`)",
            );
            let err = err.to_compile_error();
            return quote!(#err #input);
        }
    };
    let cx = Ctxt::new();
    if !args.is_empty() {
        cx.error_spanned_by(&args, "`#[simulator]` takes no arguments");
    }
    let mut model = Model::from_item(&cx, item.clone());
    let expandable = valid::signature(&cx, &item, &model);
    valid::unique_names(&cx, &mut model);
    valid::vector_sizes(&cx, &model);
    valid::literal_arguments(&cx, &model);
    valid::misplaced_samples(&cx, &mut model);
    valid::preamble_without_rng(&cx, &model);
    let had_errors = cx.has_errors();
    let errors = match cx.check() {
        Ok(()) => TokenStream::new(),
        Err(e) => e.to_compile_error(),
    };
    if !expandable {
        // The generated items would only add confusing follow-up errors.
        debug_assert!(had_errors);
        return errors;
    }
    let sig = &item.sig;
    let block = &item.block;
    let source_digest = crate::digest::digest(quote!(#sig #block));
    let code = expand(&mut model, &source_digest);
    quote!(#errors #code)
}

fn pascal_case(ident: &Ident) -> String {
    let s = ident.to_string();
    let s = s.strip_prefix("r#").unwrap_or(&s);
    s.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// The site's type: `f64`, `[f64; N]`, or the user's annotation.
/// Whether a setting's type is a number, `bool` or `char` (or an array or tuple of them): those
/// are bound by value in the generated code, every other type by reference.
fn is_plain_copy(ty: &Type) -> bool {
    const PLAIN: &[&str] = &[
        "f64", "f32", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize", "bool",
        "char",
    ];
    match ty {
        Type::Path(p) => p.qself.is_none() && p.path.get_ident().is_some_and(|id| PLAIN.iter().any(|n| id == n)),
        Type::Array(a) => is_plain_copy(&a.elem),
        Type::Tuple(t) => !t.elems.is_empty() && t.elems.iter().all(is_plain_copy),
        Type::Paren(p) => is_plain_copy(&p.elem),
        Type::Group(g) => is_plain_copy(&g.elem),
        _ => false,
    }
}

fn site_type(site: &Site) -> TokenStream {
    match (&site.ty, &site.size) {
        (Some(ty), _) => ty.to_token_stream(),
        (None, Some(n)) => quote!([f64; #n]),
        (None, None) => quote!(f64),
    }
}

/// Rewrites built-in short forms `Uniform(a, b)` to their fallible constructors
/// `::sbi_runtime::distributions::Uniform::new(a, b)`, and integer literal arguments to floats.
struct ShortForms;

impl VisitMut for ShortForms {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        syn::visit_mut::visit_expr_mut(self, e);
        if let Expr::Call(call) = e
            && let Some(form) = valid::short_form(call)
        {
            for arg in call.args.iter_mut() {
                int_to_float(arg);
            }
            let name = Ident::new(form.name, call.func.span());
            let args = &call.args;
            *e = syn::parse_quote_spanned!(call.span()=> ::sbi_runtime::distributions::#name::new(#args));
        }
    }
}

fn int_to_float(e: &mut Expr) {
    match e {
        Expr::Lit(l) => {
            if let Lit::Int(i) = &l.lit
                && i.suffix().is_empty()
            {
                l.lit = Lit::Float(LitFloat::new(&format!("{}.0", i.base10_digits()), i.span()));
            }
        }
        Expr::Unary(u) => int_to_float(&mut u.expr),
        Expr::Paren(p) => int_to_float(&mut p.expr),
        _ => {}
    }
}

fn expand(model: &mut Model, source_digest: &str) -> TokenStream {
    let item = &model.item;
    let vis = &item.vis;
    let fn_name = &item.sig.ident;
    let base = pascal_case(fn_name);
    let span = fn_name.span();
    let sim = Ident::new(&base, span);
    let params = format_ident!("{}Params", base, span = span);
    let prior = format_ident!("{}Prior", base, span = span);
    let output: Type = match &item.sig.output {
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => unreachable!("checked by valid::signature"),
    };
    let rng = &model.rng.as_ref().expect("checked by valid::signature").ident;
    let private = quote!(::sbi_runtime::__private);
    let result = quote!(::core::result::Result);
    let ok = quote!(::core::result::Result::Ok);

    for site in &mut model.sites {
        ShortForms.visit_expr_mut(&mut site.dist);
    }
    let sites = &model.sites;
    let site_idents: Vec<&Ident> = sites.iter().map(|s| &s.ident).collect();
    let site_names: Vec<String> = sites.iter().map(|s| s.ident.to_string()).collect();
    let site_types: Vec<TokenStream> = sites.iter().map(site_type).collect();
    let site_mut: Vec<_> = sites.iter().map(|s| &s.mutability).collect();
    let site_dims: Vec<TokenStream> =
        sites.iter().map(|s| s.size.as_ref().map_or(quote!(1usize), |n| quote!((#n)))).collect();
    let site_docs: Vec<String> = sites
        .iter()
        .map(|s| {
            let m = s.mac.tokens.to_string();
            format!("Prior site `{}`: `sample!({})`.", s.ident, m)
        })
        .collect();

    let setting_idents: Vec<&Ident> = model.settings.iter().map(|s| &s.ident).collect();
    let setting_types: Vec<&Type> = model.settings.iter().map(|s| &s.ty).collect();
    let setting_docs: Vec<String> =
        model.settings.iter().map(|s| format!("Setting `{}` of [`{fn_name}`].", s.ident)).collect();

    // Internal names are mixed-site: user code cannot see or shadow them.
    let m = Span::mixed_site();
    let p_var = Ident::new("__sbi_params", m);
    let v_var = Ident::new("__sbi_visitor", m);
    let i_var = Ident::new("__sbi_i", m);
    let out_var = Ident::new("__sbi_out", m);
    let flat_var = Ident::new("__sbi_flat", m);
    let names_var = Ident::new("__sbi_names", m);
    let model_var = Ident::new("__sbi_model", m);
    let r_ty = Ident::new("__SbiRng", m);
    let v_ty = Ident::new("__SbiVisitor", m);

    let struct_body = |idents: &[&Ident], types: &[&Type], docs: &[String]| {
        if idents.is_empty() { quote!(;) } else { quote!({ #( #[doc = #docs] pub #idents: #types, )* }) }
    };
    let sim_struct = struct_body(&setting_idents, &setting_types, &setting_docs);
    let prior_struct = sim_struct.clone();
    // Settings are bound without a copy of their data: numbers, `bool` and `char` (and arrays
    // of them) by value, everything else (`Vec`, `String`, a user's struct) by shared reference,
    // so a large setting costs nothing per simulation.
    let bind_settings = model.settings.iter().map(|s| {
        let (id, ty) = (&s.ident, &s.ty);
        if is_plain_copy(ty) {
            quote! { #[allow(unused_variables)] let #id: #ty = self.#id; }
        } else {
            quote! { #[allow(unused_variables)] let #id: &#ty = &self.#id; }
        }
    });
    let bind_settings = quote! { #( #bind_settings )* };

    // Parameters: flat layout in site order.
    let write_site = sites.iter().map(|s| {
        let id = &s.ident;
        match &s.size {
            None => quote! { #out_var[#i_var] = self.#id; #i_var += 1; },
            Some(n) => quote! { #out_var[#i_var..#i_var + (#n)].copy_from_slice(&self.#id); #i_var += (#n); },
        }
    });
    let read_site = sites.iter().map(|s| {
        let id = &s.ident;
        match &s.size {
            None => quote! { let #id = #flat_var[#i_var]; #i_var += 1; },
            Some(n) => quote! {
                let #id: [f64; #n] = ::core::array::from_fn(|k| #flat_var[#i_var + k]);
                #i_var += (#n);
            },
        }
    });
    let push_name = sites.iter().zip(&site_names).map(|(s, name)| match &s.size {
        None => quote! { #names_var.push(::std::string::String::from(#name)); },
        Some(n) => quote! { #private::vector_names(#name, #n, &mut #names_var); },
    });
    let visit_site = sites.iter().zip(&site_names).zip(&site_types).map(|((s, name), ty)| {
        let id = &s.ident;
        let dist = &s.dist;
        match &s.size {
            None => quote! { let #id: #ty = #private::SiteVisitor::scalar(#v_var, #name, #dist)?; },
            Some(_) => quote! { let #id: #ty = #private::SiteVisitor::vector(#v_var, #name, #dist)?; },
        }
    });

    // A preamble value may serve only the sites or only the simulator.
    let preamble: Vec<syn::Stmt> = model
        .preamble
        .iter()
        .cloned()
        .map(|mut stmt| {
            if let syn::Stmt::Local(local) = &mut stmt {
                local.attrs.push(syn::parse_quote!(#[allow(unused_variables, unused_mut)]));
            }
            stmt
        })
        .collect();
    let preamble = &preamble;
    let body = &model.body;
    let attrs = &item.attrs;
    let sig = &item.sig;
    let output_assoc = quote_spanned!(output.span()=> type Output = #output;);
    let params_doc =
        format!("Parameters of the model [`{fn_name}`], one field per prior site (generated by `#[simulator]`).");
    let sim_doc = format!(
        "The model [`{fn_name}`] as a simulator; its fields are the model's settings (generated by `#[simulator]`)."
    );
    let prior_doc = format!("The prior of the model [`{fn_name}`] (generated by `#[simulator]`).");

    quote! {
        #(#attrs)*
        #vis #sig {
            let #model_var = #sim { #( #setting_idents ),* };
            let #p_var = #private::Prior::sample(&#private::Simulator::prior(&#model_var), &mut *#rng)
                .unwrap_or_else(|e| ::core::panic!("{}", e));
            #private::Simulator::simulate(&#model_var, &#p_var, &mut &mut *#rng)
        }

        #[doc = #params_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq)]
        #vis struct #params {
            #( #[doc = #site_docs] pub #site_idents: #site_types, )*
        }

        impl #private::Parameters for #params {
            const DIM: usize = 0usize #( + #site_dims )*;

            fn names() -> ::std::vec::Vec<::std::string::String> {
                #[allow(unused_mut)]
                let mut #names_var = ::std::vec::Vec::new();
                #( #push_name )*
                #names_var
            }

            #[allow(unused_assignments, unused_mut, unused_variables)]
            fn write_flat(&self, #out_var: &mut [f64]) -> #private::Result<()> {
                #private::expect_len(#base, <Self as #private::Parameters>::DIM, #out_var.len())?;
                let mut #i_var = 0usize;
                #( #write_site )*
                #ok(())
            }

            #[allow(unused_assignments, unused_mut, unused_variables)]
            fn from_flat(#flat_var: &[f64]) -> #result<Self, #private::Error> {
                #private::expect_len(#base, <Self as #private::Parameters>::DIM, #flat_var.len())?;
                let mut #i_var = 0usize;
                #( #read_site )*
                #ok(Self { #( #site_idents ),* })
            }
        }

        #[doc = #sim_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone)]
        #vis struct #sim #sim_struct

        #[doc = #prior_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone)]
        #vis struct #prior #prior_struct

        impl #private::Prior for #prior {
            type Params = #params;

            #[allow(unused_variables, clippy::all)]
            fn visit_sites<#v_ty: #private::SiteVisitor>(&self, #v_var: &mut #v_ty) -> #result<(), #private::Error> {
                #bind_settings
                #( #preamble )*
                #( #visit_site )*
                #ok(())
            }
        }

        impl #private::Simulator for #sim {
            type Params = #params;
            #output_assoc
            type Prior = #prior;

            fn source_digest(&self) -> ::core::option::Option<&'static str> {
                ::core::option::Option::Some(#source_digest)
            }

            fn settings(&self) -> ::std::string::String {
                ::std::format!("{:?}", self)
            }

            fn prior(&self) -> #prior {
                #prior { #( #setting_idents: ::core::clone::Clone::clone(&self.#setting_idents) ),* }
            }

            #[allow(unused_variables, unused_mut)]
            fn simulate<#r_ty: #private::Rng>(&self, #p_var: &#params, #rng: &mut #r_ty) -> #output {
                #bind_settings
                #( #preamble )*
                #( let #site_mut #site_idents: #site_types = #p_var.#site_idents; )*
                #( #body )*
            }
        }
    }
}
