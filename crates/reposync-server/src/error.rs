use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reposync_api::{ApiError, ApiErrorBody};
use reposync_core::error::{CoreError, ErrorKind};
use reposync_model::FieldError;
use reposync_store::StoreError;

/// An error on its way to becoming an HTTP response. This is the one place where errors turn
/// into statuses and codes.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Whole seconds for a `Retry-After` header: when a refused request may come again.
    pub retry_after_secs: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
        AppError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> AppError {
        self.field = Some(field.into());
        self
    }

    pub fn unauthorized(message: &str) -> AppError {
        AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).with_field(field)
    }

    /// `429 rate_limited`, with a `Retry-After` of `retry_after` rounded up to whole seconds
    /// (at least one).
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> AppError {
        let mut error = AppError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        let whole = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        error.retry_after_secs = Some(whole.max(1));
        error
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: ApiError {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<FieldError> for AppError {
    fn from(error: FieldError) -> AppError {
        AppError::from(CoreError::from(error))
    }
}

impl From<CoreError> for AppError {
    fn from(error: CoreError) -> AppError {
        let status = match error.kind {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        AppError {
            field: error.field,
            retry_after_secs: error.retry_after_secs,
            ..AppError::new(status, error.code, error.message)
        }
    }
}

/// The store's errors mean what they mean to a use case.
impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        AppError::from(CoreError::from(error))
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> AppError {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(e) => AppError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {}", source_text(&e)),
            ),
            JsonRejection::JsonDataError(e) => json_data_error(&source_text(&e)),
            JsonRejection::BytesRejection(e) => {
                let status = e.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "body_too_large"
                } else {
                    "bad_request"
                };
                AppError::new(status, code, e.body_text())
            }
            other => AppError::new(StatusCode::BAD_REQUEST, "bad_request", other.body_text()),
        }
    }
}

/// A body that is JSON but not the expected shape (see [`CoreError::malformed_data`]).
pub fn json_data_error(text: &str) -> AppError {
    AppError::from(CoreError::malformed_data(text))
}

fn source_text(error: &dyn std::error::Error) -> String {
    let mut deepest = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        deepest = inner.to_string();
        source = inner.source();
    }
    deepest
}
