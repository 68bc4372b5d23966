//! Procedural macros of quicksilver.
//!
//! Applications use them through the re-exports in the `quicksilver` crate,
//! as `#[quicksilver::command]`, and need no dependency on this crate. The
//! generated code names everything by full path under `::quicksilver`, so it
//! works only in crates that depend on `quicksilver` under that name.

mod errors;
mod expand;
mod options;
mod signature;

use proc_macro::TokenStream;

/// Marks an async fn as a quicksilver command.
///
/// The expansion keeps the function as written and adds, in an anonymous
/// constant, an entry point that parses the task's arguments and calls the
/// function, and a registration of that entry point with `inventory`. When
/// the attribute or the function is invalid, the expansion keeps the function
/// and adds an error for every problem found.
///
/// # Caveats
///
/// - The function must be a free function, in a module or a block. In an
///   `impl` block the anonymous constant is rejected by the compiler.
/// - The generated code names the library as `::quicksilver`, so a crate
///   that renames the dependency cannot use the attribute.
#[proc_macro_attribute]
pub fn command(attribute: TokenStream, item: TokenStream) -> TokenStream {
    match expand::expand(attribute.into(), item.clone().into()) {
        Ok(expanded) => expanded.into(),
        Err(error) => {
            // The function stays beside the errors, so that IDEs keep
            // resolving its name and checking its body.
            let mut output = item;
            output.extend(TokenStream::from(error.into_compile_error()));
            output
        }
    }
}
