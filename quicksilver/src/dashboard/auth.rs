//! Bearer-token and HTTP basic authentication for hosts without their own.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::{Choice, ConstantTimeEq};

/// The challenges of a 401 response. Browsers show the realm in their
/// login prompt.
const BASIC_CHALLENGE: &str = "Basic realm=\"quicksilver\", charset=\"UTF-8\"";
const BEARER_CHALLENGE: &str = "Bearer realm=\"quicksilver\"";

/// The credentials that [`require_auth`] accepts: bearer tokens, HTTP
/// basic user names with passwords, or several of either.
///
/// Secrets are compared in constant time, and every accepted credential is
/// compared, so the time taken does not tell which one came close. The
/// length of a secret may still show in the timing. An empty token or
/// password never matches.
///
/// # Examples
///
/// ```
/// use quicksilver::dashboard::Auth;
///
/// let auth = Auth::basic("admin", "a long password").or(Auth::bearer("a long random token"));
/// assert!(format!("{auth:?}").contains("admin"));
/// assert!(!format!("{auth:?}").contains("a long password"));
/// ```
#[derive(Clone)]
pub struct Auth {
    accepted: Arc<[Credential]>,
}

#[derive(Clone)]
enum Credential {
    Bearer(Vec<u8>),
    Basic { user: Vec<u8>, password: Vec<u8> },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = self
            .accepted
            .iter()
            .map(|credential| match credential {
                Credential::Bearer(_) => "bearer token".to_owned(),
                Credential::Basic { user, .. } => {
                    format!("basic user `{}`", String::from_utf8_lossy(user))
                }
            })
            .collect();
        f.debug_struct("Auth").field("accepted", &kinds).finish()
    }
}

impl Auth {
    /// Accepts `Authorization: Bearer <token>`.
    pub fn bearer(token: impl Into<String>) -> Auth {
        Auth {
            accepted: Arc::new([Credential::Bearer(token.into().into_bytes())]),
        }
    }

    /// Accepts HTTP basic authentication with `user` and `password`, which
    /// makes browsers ask for them.
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Auth {
        Auth {
            accepted: Arc::new([Credential::Basic {
                user: user.into().into_bytes(),
                password: password.into().into_bytes(),
            }]),
        }
    }

    /// Accepts the credentials of `other` as well as these.
    pub fn or(self, other: Auth) -> Auth {
        let accepted: Vec<Credential> = self
            .accepted
            .iter()
            .chain(other.accepted.iter())
            .cloned()
            .collect();
        Auth {
            accepted: accepted.into(),
        }
    }

    /// Returns whether the `Authorization` header of `headers` carries
    /// accepted credentials.
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
        else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        let bearer = scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(rest.as_bytes());
        let basic = if scheme.eq_ignore_ascii_case("basic") {
            base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|decoded| {
                    let colon = decoded.iter().position(|&byte| byte == b':')?;
                    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
                })
        } else {
            None
        };

        let mut matched = Choice::from(0);
        for credential in self.accepted.iter() {
            match credential {
                Credential::Bearer(token) => {
                    if let Some(given) = bearer {
                        matched |= secret_eq(token, given);
                    }
                }
                Credential::Basic { user, password } => {
                    if let Some((given_user, given_password)) = &basic {
                        matched |= user.ct_eq(given_user) & secret_eq(password, given_password);
                    }
                }
            }
        }
        matched.into()
    }

    /// Returns the 401 response, with a challenge for each kind accepted.
    fn challenge(&self) -> Response {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            "401 Unauthorized: this quicksilver dashboard needs credentials; \
             send the password or the bearer token that its host configured\n",
        )
            .into_response();
        let basic = self
            .accepted
            .iter()
            .any(|credential| matches!(credential, Credential::Basic { .. }));
        let bearer = self
            .accepted
            .iter()
            .any(|credential| matches!(credential, Credential::Bearer(_)));
        let headers = response.headers_mut();
        if basic {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        if bearer {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BEARER_CHALLENGE),
            );
        }
        response
    }
}

/// Compares a configured secret with a given one in constant time for
/// equal lengths; an empty secret never matches.
fn secret_eq(expected: &[u8], given: &[u8]) -> Choice {
    Choice::from(u8::from(!expected.is_empty())) & expected.ct_eq(given)
}

/// Lets a request through when it carries credentials that `auth`
/// accepts, and returns 401 with a `WWW-Authenticate` challenge
/// otherwise. Use it with [`axum::middleware::from_fn_with_state`]; see
/// the [module documentation](crate::dashboard) for an example.
pub async fn require_auth(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    if auth.accepts(request.headers()) {
        next.run(request).await
    } else {
        auth.challenge()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("a valid header value"),
        );
        headers
    }

    fn basic(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    #[test]
    fn bearer_token_matches_exactly() {
        let auth = Auth::bearer("s3cret");
        assert!(auth.accepts(&headers("Bearer s3cret")));
        assert!(auth.accepts(&headers("bearer s3cret")));
        assert!(!auth.accepts(&headers("Bearer s3cre")));
        assert!(!auth.accepts(&headers("Bearer s3cret2")));
        assert!(!auth.accepts(&headers(&basic("admin", "s3cret"))));
        assert!(!auth.accepts(&HeaderMap::new()));
    }

    #[test]
    fn basic_needs_user_and_password() {
        let auth = Auth::basic("admin", "pa:ss");
        assert!(auth.accepts(&headers(&basic("admin", "pa:ss"))));
        assert!(!auth.accepts(&headers(&basic("root", "pa:ss"))));
        assert!(!auth.accepts(&headers(&basic("admin", "pa"))));
        assert!(!auth.accepts(&headers("Basic not-base64!")));
        assert!(!auth.accepts(&headers("Bearer pa:ss")));
    }

    #[test]
    fn empty_secret_never_matches() {
        assert!(!Auth::bearer("").accepts(&headers("Bearer ")));
        assert!(!Auth::basic("admin", "").accepts(&headers(&basic("admin", ""))));
    }

    #[test]
    fn combined_auth_accepts_either() {
        let auth = Auth::basic("admin", "one").or(Auth::bearer("two"));
        assert!(auth.accepts(&headers(&basic("admin", "one"))));
        assert!(auth.accepts(&headers("Bearer two")));
        assert!(!auth.accepts(&headers("Bearer one")));
        let challenges: Vec<_> = auth
            .challenge()
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect();
        assert_eq!(
            challenges,
            [
                "Basic realm=\"quicksilver\", charset=\"UTF-8\"",
                "Bearer realm=\"quicksilver\""
            ]
        );
    }
}
