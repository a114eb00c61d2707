//! The HTTP leaves of the REST emulator: a request as the endpoints see it (decoded path
//! segments, query pairs, the body already read), the reply they give back, the response
//! body type, and the percent-encoding both directions need.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use serde_json::Value;
use tokio::sync::mpsc;

/// One request, read whole (bodies are small form posts) and decoded once.
#[derive(Debug)]
pub(super) struct ApiRequest {
    pub method: Method,
    /// The path as sent, still percent-encoded, for the log and for `next` links.
    pub raw_path: String,
    /// The path's segments, percent-decoded one by one, without the empty one before the
    /// leading `/`. A trailing `/` leaves an empty last segment, and a segment that holds `/`
    /// was sent as `%2F`: both matter to Cloud's `src`.
    pub segments: Vec<String>,
    /// The query's pairs in order, `+` and `%XX` decoded.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    pub fn new(
        method: Method,
        raw_path: &str,
        raw_query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        let segments = raw_path
            .strip_prefix('/')
            .unwrap_or(raw_path)
            .split('/')
            .map(|segment| String::from_utf8_lossy(&percent_decode(segment, false)).into_owned())
            .collect();
        let query = raw_query
            .map(|query| {
                url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Self {
            method,
            raw_path: raw_path.to_owned(),
            segments,
            query,
            headers,
            body,
        }
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a repeated query parameter, in order.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// What an endpoint answers.
#[derive(Debug)]
pub(super) enum Reply {
    /// A complete response.
    Full {
        status: StatusCode,
        headers: Vec<(HeaderName, String)>,
        body: Vec<u8>,
    },
    /// A `200` whose body is the standard output of a git command run in `repo`, streamed as
    /// git writes it (archives, which must not be held in memory).
    Stream {
        headers: Vec<(HeaderName, String)>,
        repo: PathBuf,
        args: Vec<String>,
    },
    /// No answer: the connection is closed.
    Hangup,
    /// This answer, held back until the test releases it ([`super::ApiFault::HoldAfterHandling`]).
    Held(Box<Reply>),
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: StatusCode, value: &Value) -> Self {
        Self::Full {
            status,
            headers: vec![(CONTENT_TYPE, "application/json; charset=utf-8".to_owned())],
            body: value.to_string().into_bytes(),
        }
    }

    /// A plain-text answer.
    pub fn text(status: StatusCode, text: &str) -> Self {
        Self::Full {
            status,
            headers: vec![(CONTENT_TYPE, "text/plain; charset=utf-8".to_owned())],
            body: text.as_bytes().to_vec(),
        }
    }

    /// Bytes with the given content type (and whatever other headers are added later).
    pub fn bytes(status: StatusCode, content_type: &str, body: Vec<u8>) -> Self {
        Self::Full {
            status,
            headers: vec![(CONTENT_TYPE, content_type.to_owned())],
            body,
        }
    }

    /// An empty answer.
    pub fn empty(status: StatusCode) -> Self {
        Self::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The same reply with one more header (none for a hang-up).
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        match &mut self {
            Self::Full { headers, .. } | Self::Stream { headers, .. } => {
                headers.push((name, value.into()));
            }
            Self::Held(answer) => {
                let held = std::mem::replace(answer.as_mut(), Self::Hangup);
                **answer = held.with_header(name, value);
            }
            Self::Hangup => {}
        }
        self
    }
}

/// Header pairs as a `HeaderMap`, skipping values that are not valid header text (the
/// endpoints only build ASCII values, so nothing is lost in practice).
pub(super) fn header_map(headers: Vec<(HeaderName, String)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            map.append(name, value);
        }
    }
    map
}

/// A response body: either complete, with its exact length (so hyper sends
/// `Content-Length`), or streamed from a channel.
#[derive(Debug)]
pub(super) struct ApiBody {
    first: Option<Bytes>,
    rest: Option<mpsc::Receiver<io::Result<Bytes>>>,
}

impl ApiBody {
    pub fn full(bytes: Vec<u8>) -> Self {
        Self {
            first: Some(Bytes::from(bytes)),
            rest: None,
        }
    }

    pub fn streaming(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            first: None,
            rest: Some(rx),
        }
    }
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(first) = self.first.take()
            && !first.is_empty()
        {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match &mut self.rest {
            None => Poll::Ready(None),
            Some(rx) => rx
                .poll_recv(cx)
                .map(|next| next.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.first.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.first, &self.rest) {
            (first, None) => {
                let len = first.as_ref().map_or(0, Bytes::len);
                SizeHint::with_exact(u64::try_from(len).unwrap_or(u64::MAX))
            }
            (_, Some(_)) => SizeHint::default(),
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as forms write it); a `%`
/// not followed by two hex digits stays as it is, as lenient servers do.
pub(super) fn percent_decode(text: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let high = bytes.get(index + 1).and_then(|b| (*b as char).to_digit(16));
                let low = bytes.get(index + 2).and_then(|b| (*b as char).to_digit(16));
                match (high, low) {
                    (Some(high), Some(low)) => {
                        // Two hex digits make at most 255, so the cast cannot truncate.
                        decoded.push((high * 16 + low) as u8);
                        index += 3;
                        continue;
                    }
                    _ => decoded.push(b'%'),
                }
            }
            b'+' if plus_is_space => decoded.push(b' '),
            byte => decoded.push(byte),
        }
        index += 1;
    }
    decoded
}

/// Percent-encodes a repository path for a URL: every byte but the unreserved ones and the
/// `/` between segments, so that `Cloud Providers/a b.yaml` becomes
/// `Cloud%20Providers/a%20b.yaml`.
pub(super) fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Percent-encodes one path segment: like [`encode_path`], but `/` too.
pub(super) fn encode_segment(segment: &str) -> String {
    encode_path(segment).replace('/', "%2F")
}

/// A query string from pairs, form-encoded.
pub(super) fn query_string(pairs: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(key, value)| (*key, value.as_str())))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_decoded_one_by_one_and_keep_an_encoded_slash() {
        let request = ApiRequest::new(
            Method::GET,
            "/2.0/repositories/acme/config/refs/branches/feature%2Fx",
            Some("q=a+b&path=A&path=B%2FC"),
            HeaderMap::new(),
            Bytes::new(),
        );
        assert_eq!(
            request.segments,
            [
                "2.0",
                "repositories",
                "acme",
                "config",
                "refs",
                "branches",
                "feature/x"
            ]
        );
        assert_eq!(request.param("q"), Some("a b"));
        assert_eq!(request.params("path"), ["A", "B/C"]);
    }

    #[test]
    fn a_trailing_slash_leaves_an_empty_segment() {
        let request = ApiRequest::new(
            Method::GET,
            "/2.0/x/src/abc/",
            None,
            HeaderMap::new(),
            Bytes::new(),
        );
        assert_eq!(request.segments.last().map(String::as_str), Some(""));
    }

    #[test]
    fn paths_round_trip_through_encoding() {
        let path = "Cloud Providers/a+b%/ü.yaml";
        let encoded = encode_path(path);
        assert_eq!(encoded, "Cloud%20Providers/a%2Bb%25/%C3%BC.yaml");
        assert_eq!(percent_decode(&encoded, false), path.as_bytes());
        assert_eq!(encode_segment("feature/x"), "feature%2Fx");
        assert_eq!(percent_decode("a+b%zz", true), b"a b%zz");
    }
}
