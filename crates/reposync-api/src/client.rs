use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::{ApiError, ApiErrorBody};

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{}{}", error.field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default(), error.message)]
    Api {
        status: u16,
        error: ApiError,
        body: Value,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the reposync server at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server answered with something that is not the expected JSON.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// A bad server URL.
    #[error("invalid server URL {0:?}")]
    BadUrl(String),
}

/// A client of the REST API, authenticated with a bearer token.
#[derive(Clone)]
pub struct Client {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Client {
    /// A client for the server at `base` (for example `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        let mut base = Url::parse(base).map_err(|_| ClientError::BadUrl(base.to_owned()))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Client { base, token, http })
    }

    /// The URL of `segments` under the server's base, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| ClientError::BadUrl(self.base.to_string()))?;
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        Ok(url)
    }

    /// Sends a request and returns the JSON answer (`null` for an empty body).
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let url = self.url(segments)?;
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(timeout)
            .query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ClientError::Transport {
            url: self.base.to_string(),
            reason: describe(&e),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ClientError::Transport {
            url: self.base.to_string(),
            reason: describe(&e),
        })?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match serde_json::from_value::<ApiErrorBody>(body.clone()) {
            Ok(parsed) => Err(ClientError::Api {
                status: status.as_u16(),
                error: parsed.error,
                body,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                error: ApiError {
                    code: "http_error".into(),
                    message: format!("the server answered {status}"),
                    field: None,
                },
                body,
            }),
        }
    }

    /// `GET` under `/api/v1` of an answer that is not JSON (an archive): the response, for the
    /// caller to read as it arrives, never whole; an error answer is read as any other.
    /// `timeout` bounds the whole transfer.
    pub async fn download(
        &self,
        segments: &[&str],
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(&api(segments))?;
        let mut request = self.http.get(url).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| ClientError::Transport {
            url: self.base.to_string(),
            reason: describe(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // Error answers are small JSON envelopes.
        let bytes = response.bytes().await.map_err(|e| ClientError::Transport {
            url: self.base.to_string(),
            reason: describe(&e),
        })?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let error = serde_json::from_value::<ApiErrorBody>(body.clone())
            .map(|parsed| parsed.error)
            .unwrap_or_else(|_| ApiError {
                code: "http_error".into(),
                message: format!("the server answered {status}"),
                field: None,
            });
        Err(ClientError::Api {
            status: status.as_u16(),
            error,
            body,
        })
    }

    /// `GET` under `/api/v1`.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.send(Method::GET, &api(segments), query, None::<&Value>, timeout)
            .await
    }

    /// `GET /api/v1/audit`: the audit trail's events `query` selects, newest first, as the
    /// server's JSON (a `ListResponse<AuditEventView>`).
    pub async fn audit(&self, query: &crate::AuditQuery) -> Result<Value, ClientError> {
        self.get(&["audit"], &query.pairs(), Duration::from_secs(30))
            .await
    }

    /// A method with a JSON body under `/api/v1`.
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: &(impl Serialize + ?Sized),
    ) -> Result<Value, ClientError> {
        self.send(
            method,
            &api(segments),
            &[],
            Some(body),
            Duration::from_secs(30),
        )
        .await
    }

    /// `DELETE` under `/api/v1`.
    pub async fn delete(&self, segments: &[&str]) -> Result<Value, ClientError> {
        self.send(
            Method::DELETE,
            &api(segments),
            &[],
            None::<&Value>,
            Duration::from_secs(30),
        )
        .await
    }
}

fn api<'a>(segments: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["api", "v1"];
    all.extend_from_slice(segments);
    all
}

/// Deserialises an answer into a typed view.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Decode(e.to_string()))
}

fn describe(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
