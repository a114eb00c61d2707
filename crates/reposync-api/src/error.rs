use serde::{Deserialize, Serialize};

/// The body of every error response: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"error": {"code": "not_found", "message": "no secret named \"bb-token\"", "field": "name"}}))))]
pub struct ApiErrorBody {
    pub error: ApiError,
}

/// What went wrong, with a stable code, a message for people, and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"code": "invalid", "message": "must not be empty", "field": "value"}))))]
pub struct ApiError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
