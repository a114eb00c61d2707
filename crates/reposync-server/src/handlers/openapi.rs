//! The OpenAPI document of `/api/v1` (see `crate::openapi`), served as the route table built it.

use std::sync::Arc;

use axum::extract::Extension;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// The document, made once with the route table: the routes it lists are the routes served.
#[derive(Clone)]
pub struct Document(pub Arc<utoipa::openapi::OpenApi>);

/// utoipa's types implement `Debug` only behind a feature; the paths are what tell documents
/// apart.
impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("paths", &self.0.paths.paths.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// This document. It needs no token: it holds no secret, and a client reads it before it has
/// one.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of `/api/v1`", content_type = "application/json", body = Object),
    ),
)]
pub async fn document(Extension(document): Extension<Document>) -> Result<Response, AppError> {
    let json = serde_json::to_vec(document.0.as_ref()).map_err(|error| {
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot write the OpenAPI document: {error}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}
