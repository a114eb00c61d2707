//! Who is using the UI: the session cookie, and the caller it stands for.
//!
//! The cookie holds a random session id (only its hash is stored). It is `HttpOnly` (no script
//! reads it), `SameSite=Strict` (no other site's request carries it) and `Secure` when the
//! public URL is https; it lives as long as its session at most.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_core::users::{self, Caller, SESSION_LIFETIME};

use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "reposync_session";

/// The caller of a request with a live session. A request without one is sent to the login
/// page, which brings them back where they were going.
#[derive(Debug, Clone)]
pub struct UiCaller(pub Caller);

impl FromRequestParts<AppState> for UiCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let caller = match session_id(&parts.headers) {
            Some(id) => users::session_caller(&state.store, &id)
                .await
                .map_err(|e| crate::error::AppError::from(e).into_response())?,
            None => None,
        };
        match caller {
            Some(caller) => Ok(UiCaller(caller)),
            None => {
                let target = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .filter(|p| p.starts_with("/ui/"))
                    .unwrap_or("/ui/");
                let next = super::url_encode(target);
                Err(Redirect::to(&format!("/ui/login?next={next}")).into_response())
            }
        }
    }
}

/// The session id the request's cookie holds, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value that starts a session.
pub fn start_cookie(id: &str, secure: bool) -> HeaderValue {
    let max_age = SESSION_LIFETIME.as_secs();
    cookie(&format!("{COOKIE}={id}; Max-Age={max_age}"), secure)
}

/// The `Set-Cookie` value that ends one.
pub fn end_cookie(secure: bool) -> HeaderValue {
    cookie(&format!("{COOKIE}=; Max-Age=0"), secure)
}

fn cookie(head: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{head}; Path=/ui; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Where to go after logging in: a page of the UI, never another site.
pub fn safe_next(next: &str) -> &str {
    if next.starts_with("/ui/") && !next.starts_with("/ui//") && !next.contains('\\') {
        next
    } else {
        "/ui/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let plain = start_cookie("abc", false);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with(
            "reposync_session=abc; Max-Age=43200; Path=/ui; HttpOnly; SameSite=Strict"
        ));
        assert!(!plain.contains("Secure"));
        assert!(
            start_cookie("abc", true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }

    #[test]
    fn after_login_only_pages_of_the_ui_are_gone_to() {
        assert_eq!(safe_next("/ui/setup"), "/ui/setup");
        for elsewhere in [
            "https://evil.example/",
            "//evil.example",
            "/ui//evil.example",
            "/api/v1/secrets",
            "/ui/\\evil",
        ] {
            assert_eq!(safe_next(elsewhere), "/ui/", "{elsewhere}");
        }
    }

    #[test]
    fn the_session_is_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; reposync_session=xyz; b=2"),
        );
        assert_eq!(session_id(&headers).as_deref(), Some("xyz"));
        assert_eq!(session_id(&HeaderMap::new()), None);
    }
}
