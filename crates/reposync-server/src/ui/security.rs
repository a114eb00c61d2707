//! What every UI response carries, and what every UI request must show: a strict Content
//! Security Policy (no inline script or style, no framing), no caching of pages that show
//! configuration, and a refusal of state-changing requests another site sent.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The Content Security Policy of every UI response: only this origin's files, no inline
/// script or style, `data:` images for Pico's icons, and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every UI response, and keeps pages out of caches (the static
/// files set their own caching).
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Refuses a state-changing request that a browser says came from another site: by
/// `Sec-Fetch-Site`, or else by an `Origin` that is not this server's host. Requests with
/// neither header come from programs, not browsers, and carry no session cookie of a
/// victim's; the cookie is `SameSite=Strict` besides.
pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || same_site(request.headers())
    {
        return next.run(request).await;
    }
    tracing::warn!(method = %request.method(), "refused a cross-site request to the UI");
    (
        StatusCode::FORBIDDEN,
        "Refused: this request came from another site. Use reposync's own pages.",
    )
        .into_response()
}

fn same_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_requests_from_this_site_or_from_programs_may_change_state() {
        assert!(same_site(&with(&[("sec-fetch-site", "same-origin")])));
        assert!(same_site(&with(&[("sec-fetch-site", "none")])));
        assert!(!same_site(&with(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_site(&with(&[("sec-fetch-site", "same-site")])));
        assert!(same_site(&with(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_site(&with(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(same_site(&with(&[])));
    }
}
