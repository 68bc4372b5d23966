//! Options of `#[quicksilver::command(...)]`: `name = "..."` and `lock`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

use crate::errors::Errors;

/// The options given in the attribute, each already checked.
#[derive(Default)]
pub(crate) struct CommandOptions {
    /// The command name given with `name = "..."`, if any.
    pub(crate) name: Option<LitStr>,
    /// Whether `lock` was given, making the command exclusive.
    pub(crate) lock: bool,
}

/// Parses the attribute's options.
///
/// Returns an error for each invalid, unknown or repeated option, combined
/// into one.
pub(crate) fn parse_options(attribute: TokenStream) -> syn::Result<CommandOptions> {
    let parser = Punctuated::<Meta, Token![,]>::parse_terminated;
    let metas = parser.parse2(attribute).map_err(explain_syntax_error)?;

    let mut errors = Errors::default();
    let mut options = CommandOptions::default();
    let mut name_seen = false;
    let mut lock_seen = false;
    for meta in metas {
        let path = meta.path();
        if path.is_ident("name") {
            if name_seen {
                errors.push(duplicate_option(&meta, "name"));
                continue;
            }
            name_seen = true;
            options.name = errors.take(parse_name(&meta));
        } else if path.is_ident("lock") {
            if lock_seen {
                errors.push(duplicate_option(&meta, "lock"));
                continue;
            }
            lock_seen = true;
            options.lock = errors.take(parse_lock(&meta)).is_some();
        } else {
            let option = path_to_string(path);
            errors.push(syn::Error::new_spanned(
                path,
                format!(
                    "unknown option `{option}` in `#[quicksilver::command]`, \
                     expected `name = \"...\"` or `lock`"
                ),
            ));
        }
    }
    errors.finish(options)
}

/// The characters allowed in a command name, as the error messages state
/// them.
pub(crate) const NAME_CHARACTERS: &str = "ASCII letters, digits, `_`, `-` and `.`";

/// Returns the first character of `name` that a command name may not
/// contain: anything but ASCII letters, digits, `_`, `-` and `.`, which keeps
/// names safe to type in a shell and to print in logs.
pub(crate) fn find_invalid_character(name: &str) -> Option<char> {
    name.chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
}

/// Rewords syn's error for options that are not even `key` or `key = value`.
fn explain_syntax_error(error: syn::Error) -> syn::Error {
    syn::Error::new(
        error.span(),
        format!(
            "invalid options in `#[quicksilver::command]` ({error}), \
             so write `name = \"...\"` and `lock` separated by commas"
        ),
    )
}

fn duplicate_option(meta: &Meta, option: &str) -> syn::Error {
    syn::Error::new_spanned(
        meta,
        format!("duplicate option `{option}` in `#[quicksilver::command]`"),
    )
}

fn parse_name(meta: &Meta) -> syn::Result<LitStr> {
    let value = match meta {
        Meta::NameValue(name_value) => &name_value.value,
        Meta::Path(_) | Meta::List(_) => {
            return Err(syn::Error::new_spanned(
                meta,
                "option `name` in `#[quicksilver::command]` requires a value, \
                 as in `name = \"greet\"`",
            ));
        }
    };
    let literal = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(literal),
            ..
        }) => literal,
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                "option `name` in `#[quicksilver::command]` must be a string literal, \
                 as in `name = \"greet\"`",
            ));
        }
    };
    let name = literal.value();
    if name.is_empty() {
        return Err(syn::Error::new_spanned(
            literal,
            "command name in `#[quicksilver::command]` must not be empty",
        ));
    }
    if let Some(invalid) = find_invalid_character(&name) {
        return Err(syn::Error::new_spanned(
            literal,
            format!(
                "invalid character {invalid:?} in command name {name:?} of \
                 `#[quicksilver::command]`, which may contain only {NAME_CHARACTERS}"
            ),
        ));
    }
    Ok(literal.clone())
}

/// Accepts only the bare `lock`: a value such as `lock = false` would read as
/// if it turned locking off, which a flag cannot express.
fn parse_lock(meta: &Meta) -> syn::Result<()> {
    match meta {
        Meta::Path(_) => Ok(()),
        Meta::NameValue(_) | Meta::List(_) => Err(syn::Error::new_spanned(
            meta,
            "option `lock` in `#[quicksilver::command]` takes no value, \
             so write `lock` alone to make the command exclusive, or leave it out",
        )),
    }
}

/// Renders an option's path as written, without the spaces that token
/// printing adds around `::`.
fn path_to_string(path: &syn::Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse(attribute: TokenStream) -> (Option<CommandOptions>, Vec<String>) {
        match parse_options(attribute) {
            Ok(options) => (Some(options), Vec::new()),
            Err(error) => (
                None,
                error.into_iter().map(|error| error.to_string()).collect(),
            ),
        }
    }

    #[test]
    fn empty_attribute_gives_defaults() {
        let (options, messages) = parse(quote!());
        assert!(messages.is_empty(), "{messages:?}");
        let options = options.expect("no errors");
        assert!(options.name.is_none());
        assert!(!options.lock);
    }

    #[test]
    fn options_parse_in_any_order() {
        for attribute in [quote!(name = "greet", lock), quote!(lock, name = "greet",)] {
            let (options, messages) = parse(attribute);
            assert!(messages.is_empty(), "{messages:?}");
            let options = options.expect("no errors");
            assert_eq!(
                options.name.map(|name| name.value()).as_deref(),
                Some("greet")
            );
            assert!(options.lock);
        }
    }

    #[test]
    fn unknown_option_is_named() {
        let (_, messages) = parse(quote!(colour = "red"));
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].contains("unknown option `colour`"),
            "{messages:?}"
        );
    }

    #[test]
    fn duplicate_options_are_rejected() {
        let (_, messages) = parse(quote!(lock, name = "a", lock, name = "b"));
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("duplicate option `lock`"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("duplicate option `name`"),
            "{messages:?}"
        );
    }

    #[test]
    fn name_must_be_string_literal() {
        for attribute in [
            quote!(name = 5),
            quote!(name = greet),
            quote!(name),
            quote!(name("a")),
        ] {
            let (_, messages) = parse(attribute);
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(messages[0].contains("option `name`"), "{messages:?}");
        }
    }

    #[test]
    fn name_must_be_valid() {
        for attribute in [quote!(name = ""), quote!(name = "a b")] {
            let (_, messages) = parse(attribute);
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(messages[0].contains("command name"), "{messages:?}");
        }
    }

    #[test]
    fn lock_rejects_values() {
        for attribute in [quote!(lock = true), quote!(lock = false), quote!(lock(yes))] {
            let (_, messages) = parse(attribute);
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(messages[0].contains("takes no value"), "{messages:?}");
        }
    }

    #[test]
    fn invalid_syntax_is_explained() {
        let (_, messages) = parse(quote!("greet"));
        assert_eq!(messages.len(), 1);
        assert!(messages[0].contains("invalid options"), "{messages:?}");
    }

    #[test]
    fn all_problems_are_reported() {
        let (_, messages) = parse(quote!(name = "", colour, lock = true));
        assert_eq!(messages.len(), 3, "{messages:?}");
    }

    #[test]
    fn name_characters() {
        for valid in ["heartbeat", "clear_ongoing-executions.v2", "A9", ""] {
            assert_eq!(find_invalid_character(valid), None, "{valid}");
        }
        for (invalid, character) in [("a b", ' '), ("café", 'é'), ("x/y", '/')] {
            assert_eq!(
                find_invalid_character(invalid),
                Some(character),
                "{invalid}"
            );
        }
    }
}
