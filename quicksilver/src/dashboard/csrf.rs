//! Protection of the forms against cross-site request forgery.
//!
//! A random token lives in the `quicksilver_csrf` cookie (`HttpOnly`,
//! `SameSite=Strict`) and every form repeats it in its `csrf_token` field.
//! Another site can make a browser send the cookie only where
//! `SameSite=Strict` does not apply, and cannot read it to fill in the
//! field. Requests that the browser marks as cross-site through
//! `Sec-Fetch-Site`, or whose `Origin` names another host, are rejected
//! before the token is looked at, which also covers a cookie planted by a
//! sibling subdomain.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use base64::Engine as _;
use maud::{html, Markup};
use subtle::ConstantTimeEq;

use super::layout::{PageContext, Rejection};
use super::SharedState;

/// The name of the cookie that contains the token.
pub(super) const COOKIE: &str = "quicksilver_csrf";

/// The name of the form field that repeats the token.
pub(super) const FIELD: &str = "csrf_token";

/// The random bytes of a token, which is their URL-safe base64 text.
const TOKEN_BYTES: usize = 32;

/// The CSRF token of a request: the cookie's, or a new one that the
/// response sets.
#[derive(Debug, Clone)]
pub(super) struct CsrfToken {
    value: String,
    fresh: bool,
}

impl CsrfToken {
    /// Returns the token of the request's cookie, or a new random one.
    ///
    /// # Errors
    ///
    /// - The operating system's random source failed.
    pub(super) fn of(headers: &HeaderMap) -> Result<CsrfToken, getrandom::Error> {
        if let Some(value) = cookie_token(headers) {
            return Ok(CsrfToken {
                value,
                fresh: false,
            });
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(CsrfToken {
            value: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
            fresh: true,
        })
    }

    /// Returns the `Set-Cookie` value for a new token, or `None` when the
    /// browser has it already.
    pub(super) fn set_cookie(&self) -> Option<HeaderValue> {
        if !self.fresh {
            return None;
        }
        // `Path=/`, because a proxy may strip the dashboard's prefix and
        // the cookie would then never come back.
        let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", self.value);
        HeaderValue::from_str(&cookie).ok()
    }

    /// Returns the hidden form field that repeats the token.
    pub(super) fn field(&self) -> Markup {
        html! { input type="hidden" name=(FIELD) value=(self.value); }
    }
}

/// Returns the token of the `quicksilver_csrf` cookie, if one is well
/// formed.
// NOTE: the token is tied to no session: any well-formed cookie and
// matching field pass when the browser sends no `Origin` or
// `Sec-Fetch-Site`, and the cookie has no `Secure` flag.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .find(|value| is_well_formed(value))
        .map(str::to_owned)
}

fn is_well_formed(token: &str) -> bool {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .is_ok_and(|bytes| bytes.len() == TOKEN_BYTES)
}

/// Returns why a request looks cross-site, or `None` when it does not.
///
/// `Sec-Fetch-Site` comes from the browser and survives proxies, so it
/// decides when present. Older browsers send only `Origin`, which must
/// then name the host of `Host` or `X-Forwarded-Host`.
pub(super) fn cross_site_reason(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => None,
            other => Some(format!(
                "the browser sent this form from another site (Sec-Fetch-Site: {other})"
            )),
        };
    }
    let origin = text("origin")?;
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    let hosts = [text("host"), text("x-forwarded-host")];
    match origin_host {
        Some(origin_host) if hosts.iter().flatten().any(|host| *host == origin_host) => None,
        _ => Some(format!(
            "the form came from another origin (`{origin}`) than this dashboard's host"
        )),
    }
}

/// The fields of a form, in the order sent.
#[derive(Debug, Clone, Default)]
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    /// Returns the first value of the field `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the value of `name`, or an empty string.
    pub(super) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }
}

/// A form whose CSRF token matched, with the page context of its request.
pub(super) struct CheckedForm {
    pub(super) page: PageContext,
    pub(super) fields: Fields,
}

impl FromRequest<SharedState> for CheckedForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let page = PageContext::from_request_parts(&mut parts, state).await?;
        if let Some(reason) = cross_site_reason(&parts.headers) {
            return Err(page.forbidden(&reason));
        }
        let Some(cookie) = cookie_token(&parts.headers) else {
            return Err(page.forbidden(
                "the CSRF cookie `quicksilver_csrf` is missing, because the browser blocks \
                 cookies or the form was not loaded from this dashboard",
            ));
        };

        let request = Request::from_parts(parts, body);
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(request, state)
            .await
            .map_err(|rejection| {
                page.rejection(Rejection {
                    status: StatusCode::BAD_REQUEST,
                    title: "Invalid form",
                    message: format!(
                        "The form could not be read ({rejection}): send it as \
                         application/x-www-form-urlencoded. Nothing was changed."
                    ),
                })
            })?;
        let fields = Fields(fields);

        let given = fields.get(FIELD).unwrap_or_default();
        if given.is_empty() {
            return Err(page.forbidden("the form has no `csrf_token` field"));
        }
        if !bool::from(given.as_bytes().ct_eq(cookie.as_bytes())) {
            return Err(page.forbidden(
                "the form's `csrf_token` does not match the `quicksilver_csrf` cookie, for \
                 example because the form was loaded before the cookie changed",
            ));
        }
        Ok(CheckedForm { page, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                *name,
                HeaderValue::from_str(value).expect("a valid header value"),
            );
        }
        headers
    }

    #[test]
    fn new_token_sets_strict_cookie() {
        let first = CsrfToken::of(&HeaderMap::new()).expect("a random token");
        let second = CsrfToken::of(&HeaderMap::new()).expect("a random token");
        assert_ne!(first.value, second.value);
        assert!(is_well_formed(&first.value));
        let cookie = first.set_cookie().expect("a new token sets its cookie");
        let cookie = cookie.to_str().expect("ASCII");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
    }

    #[test]
    fn cookie_token_is_reused() {
        let token = CsrfToken::of(&HeaderMap::new()).expect("a random token");
        let cookie = format!("other=1; {COOKIE}={}", token.value);
        let again = CsrfToken::of(&headers(&[("cookie", &cookie)])).expect("the cookie's token");
        assert_eq!(again.value, token.value);
        assert!(again.set_cookie().is_none());
    }

    #[test]
    fn malformed_cookie_is_ignored() {
        let cookie = format!("{COOKIE}=short");
        assert!(cookie_token(&headers(&[("cookie", &cookie)])).is_none());
    }

    #[test]
    fn cross_site_requests_are_named() {
        assert!(cross_site_reason(&headers(&[("sec-fetch-site", "same-origin")])).is_none());
        assert!(cross_site_reason(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site_reason(&headers(&[("sec-fetch-site", "same-site")])).is_some());
        let same = headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(cross_site_reason(&same).is_none());
        let other = headers(&[("origin", "http://evil.test"), ("host", "127.0.0.1:8080")]);
        assert!(cross_site_reason(&other).is_some());
        let null = headers(&[("origin", "null"), ("host", "127.0.0.1:8080")]);
        assert!(cross_site_reason(&null).is_some());
        assert!(cross_site_reason(&headers(&[("host", "127.0.0.1:8080")])).is_none());
    }
}
