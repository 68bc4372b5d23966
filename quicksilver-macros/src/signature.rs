//! Checks of the function that `#[quicksilver::command]` is applied to.

use quote::quote;
use syn::{FnArg, GenericParam, PatType, Signature, Type, TypeReference};

use crate::errors::Errors;

/// The parameters of a command function that passed the checks.
pub(crate) struct CommandParameters<'a> {
    /// The first parameter, `ctx: &Context`.
    pub(crate) context: &'a PatType,
    /// The second parameter, whose type derives `clap::Parser`, if any.
    pub(crate) arguments: Option<&'a PatType>,
}

/// Checks that `signature` is one the generated entry point can call: an
/// async fn that is not const, unsafe, extern or generic over types, taking
/// `&Context` and at most one arguments value.
///
/// Returns an error for every problem found, combined into one.
pub(crate) fn check_signature(signature: &Signature) -> syn::Result<CommandParameters<'_>> {
    let mut errors = Errors::default();
    check_qualifiers(signature, &mut errors);
    check_generics(signature, &mut errors);

    let mut typed = Vec::new();
    for input in &signature.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "`#[quicksilver::command]` cannot be used on a method, \
                 so remove the `self` parameter and make it a free function",
            )),
            FnArg::Typed(parameter) => typed.push(parameter),
        }
    }

    let Some(&context) = typed.first() else {
        return Err(errors.fail(syn::Error::new(
            signature.paren_token.span.join(),
            "`#[quicksilver::command]` requires a first parameter of type \
             `&quicksilver::Context`, as in `ctx: &Context`",
        )));
    };
    errors.take(check_context(context));

    let arguments = typed.get(1).copied();
    if let Some(arguments) = arguments {
        errors.take(check_arguments(arguments));
    }

    let extra = typed.get(2..).unwrap_or_default();
    if !extra.is_empty() {
        errors.push(syn::Error::new_spanned(
            quote!(#(#extra),*),
            format!(
                "`#[quicksilver::command]` takes at most two parameters, the context \
                 and the arguments, but the function has {}",
                typed.len()
            ),
        ));
    }
    errors.finish(CommandParameters { context, arguments })
}

fn check_qualifiers(signature: &Signature, errors: &mut Errors) {
    if signature.asyncness.is_none() {
        let fn_token = &signature.fn_token;
        let ident = &signature.ident;
        errors.push(syn::Error::new_spanned(
            quote!(#fn_token #ident),
            "`#[quicksilver::command]` requires an `async fn`, found a plain `fn`",
        ));
    }
    if let Some(constness) = &signature.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "`#[quicksilver::command]` cannot be used on a `const fn`",
        ));
    }
    if let Some(unsafety) = &signature.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "`#[quicksilver::command]` cannot be used on an `unsafe fn`, \
             because the runner cannot uphold its safety requirements",
        ));
    }
    if let Some(abi) = &signature.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "`#[quicksilver::command]` cannot be used on an `extern fn`",
        ));
    }
}

/// Rejects type and const parameters, which the runner has no way to choose.
/// Lifetime parameters are inferred at the call, so they are allowed.
fn check_generics(signature: &Signature, errors: &mut Errors) {
    for parameter in &signature.generics.params {
        match parameter {
            GenericParam::Lifetime(_) => {}
            GenericParam::Type(_) | GenericParam::Const(_) => {
                errors.push(syn::Error::new_spanned(
                    parameter,
                    "`#[quicksilver::command]` cannot be used on a generic function, \
                     because the runner has no way to choose the generic arguments",
                ));
            }
        }
    }
}

/// Requires `&Context`, which the generated code borrows from the context it
/// owns for the length of the run.
///
/// Only the reference is checked here, because the macro cannot resolve
/// `Context` through imports and aliases. The compiler checks the referenced
/// type where the generated code passes the context.
fn check_context(context: &PatType) -> syn::Result<()> {
    match &*context.ty {
        Type::Reference(TypeReference {
            mutability: None, ..
        }) => Ok(()),
        Type::Reference(TypeReference {
            and_token,
            mutability: Some(mutability),
            ..
        }) => Err(syn::Error::new_spanned(
            quote!(#and_token #mutability),
            "`#[quicksilver::command]` requires the context as a shared reference \
             `&Context`, so remove `mut`",
        )),
        ty => Err(syn::Error::new_spanned(
            ty,
            "`#[quicksilver::command]` requires the context as a shared reference, \
             as in `ctx: &Context`",
        )),
    }
}

/// Requires an owned arguments type, because the future that runs the
/// command owns the parsed arguments.
fn check_arguments(arguments: &PatType) -> syn::Result<()> {
    match &*arguments.ty {
        Type::Reference(reference) => Err(syn::Error::new_spanned(
            reference,
            "`#[quicksilver::command]` requires the arguments by value, \
             as in `args: GreetArgs` with a type deriving `clap::Parser`",
        )),
        Type::ImplTrait(impl_trait) => Err(syn::Error::new_spanned(
            impl_trait,
            "`#[quicksilver::command]` cannot take `impl Trait` arguments, \
             so name a type deriving `clap::Parser`",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;

    use super::*;

    /// Checks the signature of `function` and returns the error messages and
    /// the number of parameters it accepted.
    fn check(function: TokenStream) -> (Vec<String>, Option<usize>) {
        let function: syn::ItemFn = syn::parse2(function).expect("test input is a function");
        match check_signature(&function.sig) {
            Ok(parameters) => (
                Vec::new(),
                Some(1 + usize::from(parameters.arguments.is_some())),
            ),
            Err(error) => (
                error.into_iter().map(|error| error.to_string()).collect(),
                None,
            ),
        }
    }

    #[test]
    fn accepts_context_alone() {
        let (messages, accepted) = check(quote!(
            async fn beat(ctx: &Context) {}
        ));
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(accepted, Some(1));
    }

    #[test]
    fn accepts_context_and_arguments() {
        let function = quote!(
            async fn greet<'a>(_: &'a Context, Args { name }: Args) {}
        );
        let (messages, accepted) = check(function);
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(accepted, Some(2));
    }

    #[test]
    fn rejects_qualifiers() {
        let cases = [
            (
                quote!(
                    fn beat(ctx: &Context) {}
                ),
                "requires an `async fn`",
            ),
            (
                quote!(
                    const async fn beat(ctx: &Context) {}
                ),
                "`const fn`",
            ),
            (
                quote!(
                    async unsafe fn beat(ctx: &Context) {}
                ),
                "`unsafe fn`",
            ),
            (
                quote!(
                    async extern "C" fn beat(ctx: &Context) {}
                ),
                "`extern fn`",
            ),
        ];
        for (function, expected) in cases {
            let (messages, _) = check(function);
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(messages[0].contains(expected), "{messages:?}");
        }
    }

    #[test]
    fn rejects_type_and_const_generics() {
        let (messages, _) = check(quote!(
            async fn beat<T, const N: usize>(ctx: &Context) {}
        ));
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages.iter().all(|message| message.contains("generic")));
    }

    #[test]
    fn rejects_missing_context() {
        let (messages, accepted) = check(quote!(
            async fn beat() {}
        ));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("requires a first parameter"),
            "{messages:?}"
        );
        assert_eq!(accepted, None);
    }

    #[test]
    fn rejects_context_not_shared_reference() {
        for function in [
            quote!(
                async fn beat(ctx: Context) {}
            ),
            quote!(
                async fn beat(ctx: &mut Context) {}
            ),
        ] {
            let (messages, accepted) = check(function);
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(messages[0].contains("shared reference"), "{messages:?}");
            assert_eq!(accepted, None);
        }
    }

    #[test]
    fn rejects_borrowed_or_impl_arguments() {
        for function in [
            quote!(
                async fn greet(ctx: &Context, args: &Args) {}
            ),
            quote!(
                async fn greet(ctx: &Context, args: impl Parser) {}
            ),
        ] {
            let (messages, accepted) = check(function);
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert_eq!(accepted, None);
        }
    }

    #[test]
    fn rejects_extra_parameters_once() {
        let (messages, accepted) = check(quote!(
            async fn greet(c: &C, a: A, b: B, d: D) {}
        ));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("has 4"), "{messages:?}");
        assert_eq!(accepted, None);
    }

    #[test]
    fn rejects_self_receiver() {
        let (messages, accepted) = check(quote!(
            async fn run(&self, ctx: &Context) {}
        ));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("`self`"), "{messages:?}");
        assert_eq!(accepted, None);
    }

    #[test]
    fn reports_every_problem() {
        let (messages, _) = check(quote!(
            unsafe fn run<T>(&self, ctx: Context, a: &A, b: B) {}
        ));
        let expected = [
            "requires an `async fn`",
            "`unsafe fn`",
            "generic function",
            "`self` parameter",
            "context as a shared reference",
            "arguments by value",
            "at most two parameters",
        ];
        assert_eq!(messages.len(), expected.len(), "{messages:?}");
        for (message, expected) in messages.iter().zip(expected) {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }
}
