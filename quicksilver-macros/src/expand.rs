//! Expansion of `#[quicksilver::command]`.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::{Item, ItemFn, LitStr, ReturnType, Signature};

use crate::errors::combine_results;
use crate::options::{find_invalid_character, parse_options, NAME_CHARACTERS};
use crate::signature::{check_signature, CommandParameters};

/// Expands `#[quicksilver::command(attribute)]` on `item`.
///
/// Returns the function unchanged, followed by an anonymous constant that
/// contains the command's entry point and its registration with `inventory`.
///
/// # Errors
///
/// Returns every problem found in the options and the function, combined,
/// each spanned on the tokens at fault.
pub(crate) fn expand(attribute: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = parse_options(attribute);
    let function = match parse_function(item) {
        Ok(function) => function,
        Err(error) => return combine_results(options, Err(error)).map(|(_, function)| function),
    };
    let name_and_lock = options.and_then(|options| {
        let name = match options.name {
            Some(name) => name,
            None => name_from_function(&function.sig.ident)?,
        };
        Ok((name, options.lock))
    });
    let parameters = check_signature(&function.sig);
    let ((name, lock), parameters) = combine_results(name_and_lock, parameters)?;
    Ok(generate(&function, &parameters, &name, lock))
}

fn parse_function(item: TokenStream) -> syn::Result<ItemFn> {
    match syn::parse2::<Item>(item)? {
        Item::Fn(function) => Ok(function),
        // The attribute itself is the clearest place to point at, because
        // the item may be long and of any kind.
        _ => Err(syn::Error::new(
            Span::call_site(),
            "`#[quicksilver::command]` applies only to `async fn` items",
        )),
    }
}

/// Returns the function's name, without any `r#`, as the command name.
fn name_from_function(ident: &Ident) -> syn::Result<LitStr> {
    let name = ident.unraw().to_string();
    if let Some(invalid) = find_invalid_character(&name) {
        return Err(syn::Error::new_spanned(
            ident,
            format!(
                "invalid character {invalid:?} in command name {name:?}, which \
                 `#[quicksilver::command]` takes from the function name, so set a name \
                 of {NAME_CHARACTERS} with `name = \"...\"`"
            ),
        ));
    }
    Ok(LitStr::new(&name, ident.span()))
}

/// Generates the function followed by its entry point and registration.
fn generate(
    function: &ItemFn,
    parameters: &CommandParameters<'_>,
    name: &LitStr,
    lock: bool,
) -> TokenStream {
    // Mixed-site hygiene keeps these locals apart from the user's names, so
    // a user function called `arguments` is still the one called.
    let context = Ident::new("context", Span::mixed_site());
    let arguments = Ident::new("arguments", Span::mixed_site());
    let parsed = Ident::new("parsed", Span::mixed_site());

    let parse = match parameters.arguments {
        Some(argument) => {
            let ty = &argument.ty;
            quote! {
                let #parsed = ::quicksilver::__private::parse_arguments::<#ty>(#name, #arguments)?;
            }
        }
        None => quote! {
            ::quicksilver::__private::expect_no_arguments(#name, #arguments)?;
        },
    };
    let passed_arguments = parameters.arguments.map(|_| &parsed);
    let future = command_future(&function.sig, parameters, &context, passed_arguments);

    let cfg_attributes = function
        .attrs
        .iter()
        .filter(|attribute| attribute.path().is_ident("cfg"));
    quote! {
        #function

        #(#cfg_attributes)*
        const _: () = {
            fn __quicksilver_start(
                #context: ::quicksilver::__private::Context,
                #arguments: &[::std::string::String],
            ) -> ::core::result::Result<
                ::quicksilver::__private::CommandFuture,
                ::quicksilver::__private::ArgumentError,
            > {
                #parse
                ::core::result::Result::Ok(#future)
            }

            ::quicksilver::__private::inventory::submit! {
                ::quicksilver::__private::CommandDescriptor::new(
                    #name,
                    #lock,
                    ::core::module_path!(),
                    __quicksilver_start,
                )
            }
        };
    }
}

/// Generates `Box::pin(async move { ... })`, which calls the user's function
/// and converts its return value into an outcome.
///
/// The tokens that the compiler may reject carry the locations of the user's
/// tokens, so that errors point at the user's code. A wrong context type is
/// reported at the context parameter, a return type that is not
/// `IntoOutcome` at the return type, and a future that is not `Send` at the
/// whole signature.
fn command_future(
    signature: &Signature,
    parameters: &CommandParameters<'_>,
    context: &Ident,
    arguments: Option<&Ident>,
) -> TokenStream {
    let ident = &signature.ident;
    let output = Ident::new("output", Span::mixed_site());

    let context_reference = span_over(
        &parameters.context.ty,
        quote_spanned!(Span::mixed_site()=> &),
        context,
    );
    let call = quote_spanned! {ident.span()=>
        #ident(#context_reference, #arguments).await
    };

    // `(output,).0` is the output itself, but as an expression of two tokens
    // it can cover the whole return type.
    let output_value = match &signature.output {
        ReturnType::Type(_, ty) => span_over(
            ty,
            quote_spanned!(Span::mixed_site()=> (#output,)),
            quote_spanned!(Span::mixed_site()=> .0),
        ),
        ReturnType::Default => output.to_token_stream(),
    };
    // The call has the same hygiene as its argument, or else the compiler
    // reports a wrong return type at the attribute instead.
    let into_outcome = quote_spanned!(Span::mixed_site()=> ::quicksilver::__private::into_outcome);

    span_over(
        signature,
        quote!(::std::boxed::Box::pin),
        Group::new(
            Delimiter::Parenthesis,
            quote_spanned! {ident.span()=>
                async move {
                    let #output = #call;
                    #into_outcome(#output_value)
                }
            },
        ),
    )
}

/// Returns `head` followed by `tail`, located so that the expression they
/// form spans all of `user_tokens`.
///
/// On stable Rust a procedural macro cannot join spans, but the compiler
/// computes an expression's span from its first token to its last. So `head`
/// gets the location of the first user token and the last token of `tail`
/// the location of the last one, and errors on the expression underline the
/// user's tokens from start to end. The compiler joins the two locations only
/// when `head` and the end of `tail` have the same hygiene.
fn span_over(user_tokens: &impl ToTokens, head: TokenStream, tail: impl ToTokens) -> TokenStream {
    let mut user_tokens = user_tokens.to_token_stream().into_iter();
    let Some(first) = user_tokens.next() else {
        return quote!(#head #tail);
    };
    let last = user_tokens.last().unwrap_or_else(|| first.clone());

    let head = relocate(head, first.span());
    let mut tail: Vec<TokenTree> = tail.to_token_stream().into_iter().collect();
    if let Some(end) = tail.last_mut() {
        let located = end.span().located_at(last.span());
        end.set_span(located);
    }
    quote!(#head #(#tail)*)
}

/// Moves every token of `tokens`, nested ones included, to the location of
/// `location`, keeping each token's hygiene.
fn relocate(tokens: TokenStream, location: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut moved = Group::new(group.delimiter(), relocate(group.stream(), location));
                moved.set_span(group.span().located_at(location));
                token = TokenTree::Group(moved);
            } else {
                token.set_span(token.span().located_at(location));
            }
            token
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_to_string(attribute: TokenStream, item: TokenStream) -> String {
        match expand(attribute, item) {
            Ok(tokens) => tokens.to_string(),
            Err(error) => panic!("unexpected error: {error}"),
        }
    }

    fn expand_errors(attribute: TokenStream, item: TokenStream) -> Vec<String> {
        match expand(attribute, item) {
            Ok(tokens) => panic!("expected errors, got {tokens}"),
            Err(error) => error.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    #[test]
    fn keeps_function_unchanged() {
        let item = quote! {
            /// Beats.
            #[inline]
            pub(crate) async fn heartbeat(ctx: &Context) -> Result<(), Error> { Ok(()) }
        };
        let expanded = expand_to_string(quote!(), item.clone());
        assert!(expanded.starts_with(&item.to_string()), "{expanded}");
    }

    #[test]
    fn registers_function_name_without_lock() {
        let expanded = expand_to_string(
            quote!(),
            quote!(
                async fn heartbeat(ctx: &Context) {}
            ),
        );
        assert!(
            expanded.contains("CommandDescriptor :: new (\"heartbeat\" , false ,"),
            "{expanded}"
        );
        assert!(
            expanded.contains("expect_no_arguments (\"heartbeat\""),
            "{expanded}"
        );
        assert!(expanded.contains("inventory :: submit !"), "{expanded}");
    }

    #[test]
    fn registers_given_name_with_lock() {
        let expanded = expand_to_string(
            quote!(lock, name = "greet.v2"),
            quote!(
                async fn greet(ctx: &Context, args: GreetArgs) {}
            ),
        );
        assert!(
            expanded.contains("CommandDescriptor :: new (\"greet.v2\" , true ,"),
            "{expanded}"
        );
        assert!(
            expanded.contains("parse_arguments :: < GreetArgs > (\"greet.v2\""),
            "{expanded}"
        );
        assert!(!expanded.contains("expect_no_arguments"), "{expanded}");
    }

    #[test]
    fn raw_identifier_name_has_no_prefix() {
        let expanded = expand_to_string(
            quote!(),
            quote!(
                async fn r#type(ctx: &Context) {}
            ),
        );
        assert!(
            expanded.contains("CommandDescriptor :: new (\"type\""),
            "{expanded}"
        );
    }

    #[test]
    fn non_ascii_function_name_needs_explicit_name() {
        let messages = expand_errors(
            quote!(),
            quote!(
                async fn café(ctx: &Context) {}
            ),
        );
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("`name = \"...\"`"), "{messages:?}");

        let expanded = expand_to_string(
            quote!(name = "cafe"),
            quote!(
                async fn café(ctx: &Context) {}
            ),
        );
        assert!(expanded.contains("\"cafe\""), "{expanded}");
    }

    #[test]
    fn reports_function_name_with_signature_problems() {
        let messages = expand_errors(
            quote!(),
            quote!(
                fn café(ctx: &Context) {}
            ),
        );
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("invalid character 'é'"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("requires an `async fn`"),
            "{messages:?}"
        );
    }

    #[test]
    fn copies_cfg_attributes_to_registration() {
        let expanded = expand_to_string(
            quote!(),
            quote!(
                #[cfg(feature = "extra")]
                #[doc = "x"]
                async fn extra(ctx: &Context) {}
            ),
        );
        let registration = expanded.split("const _").nth(1).unwrap_or_default();
        assert!(
            expanded.contains("# [cfg (feature = \"extra\")] const _"),
            "{expanded}"
        );
        assert!(!registration.contains("doc"), "{expanded}");
    }

    #[test]
    fn rejects_non_function_items() {
        let messages = expand_errors(
            quote!(),
            quote!(
                struct Heartbeat;
            ),
        );
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("applies only to `async fn` items"),
            "{messages:?}"
        );
    }

    #[test]
    fn reports_option_and_signature_problems_together() {
        let messages = expand_errors(
            quote!(name = "", colour, lock = true),
            quote!(
                fn run(ctx: Context, a: A, b: B) {}
            ),
        );
        assert_eq!(messages.len(), 6, "{messages:?}");
    }

    #[test]
    fn reports_options_with_unparsable_item() {
        let messages = expand_errors(
            quote!(colour),
            quote!(
                struct Heartbeat;
            ),
        );
        assert_eq!(messages.len(), 2, "{messages:?}");
    }

    #[test]
    fn spanning_keeps_head_and_tail_tokens() {
        let ty: syn::Type = syn::parse_quote!(Result<(), Error>);
        let tokens = span_over(&ty, quote!(a::b), quote!((x)));
        assert_eq!(tokens.to_string(), quote!(a::b(x)).to_string());
    }
}
