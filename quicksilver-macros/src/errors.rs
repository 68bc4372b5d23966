//! Collection of the errors found in one macro input, so that the user sees
//! every problem in one build.

/// Errors gathered while checking a macro input.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    /// Adds an error after the ones already gathered.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// Adds the error of `result`, if any, and returns its value otherwise.
    pub(crate) fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(error);
                None
            }
        }
    }

    /// Returns `value` when no error was gathered, or else all the errors.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.combined {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }

    /// Adds a last error, for a problem that stops the checks, and returns
    /// all the errors.
    pub(crate) fn fail(self, error: syn::Error) -> syn::Error {
        match self.combined {
            Some(mut combined) => {
                combined.combine(error);
                combined
            }
            None => error,
        }
    }
}

/// Pairs the values of two results, or combines the errors of both.
pub(crate) fn combine_results<A, B>(
    first: syn::Result<A>,
    second: syn::Result<B>,
) -> syn::Result<(A, B)> {
    match (first, second) {
        (Ok(first), Ok(second)) => Ok((first, second)),
        (Err(mut first), Err(second)) => {
            first.combine(second);
            Err(first)
        }
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;

    fn error(message: &str) -> syn::Error {
        syn::Error::new(Span::call_site(), message)
    }

    fn messages(error: syn::Error) -> Vec<String> {
        error.into_iter().map(|error| error.to_string()).collect()
    }

    #[test]
    fn finish_without_errors_returns_value() {
        assert_eq!(Errors::default().finish(7).ok(), Some(7));
    }

    #[test]
    fn finish_keeps_every_error_in_order() {
        let mut errors = Errors::default();
        errors.push(error("first"));
        assert!(errors.take::<u8>(Err(error("second"))).is_none());
        assert_eq!(errors.take(Ok(7)), Some(7));

        let Err(combined) = errors.finish(()) else {
            panic!("expected the gathered errors");
        };
        assert_eq!(messages(combined), ["first", "second"]);
    }

    #[test]
    fn fail_appends_last_error() {
        let mut errors = Errors::default();
        errors.push(error("first"));
        assert_eq!(messages(errors.fail(error("last"))), ["first", "last"]);
    }

    #[test]
    fn combine_results_keeps_both_errors() {
        let Err(combined) = combine_results::<(), ()>(Err(error("a")), Err(error("b"))) else {
            panic!("expected an error");
        };
        assert_eq!(messages(combined), ["a", "b"]);

        let Err(single) = combine_results::<(), ()>(Ok(()), Err(error("b"))) else {
            panic!("expected an error");
        };
        assert_eq!(messages(single), ["b"]);
        assert_eq!(combine_results::<_, _>(Ok(1), Ok(2)).ok(), Some((1, 2)));
    }
}
