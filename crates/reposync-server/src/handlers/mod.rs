//! Handlers, one module per resource.

pub mod apps;
pub mod audit;
pub mod connectors;
pub mod delegates;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod secrets;
pub mod sync;
pub mod tasks;
pub mod tree;
pub mod users;
pub mod webhooks;

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A JSON body whose rejections become [`AppError`]s naming the problem.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(ApiJson(value))
    }
}

/// The answer to a DELETE: the name of what is gone.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"deleted": "bb-token"})))]
pub struct Deleted {
    deleted: String,
}

impl Deleted {
    pub fn new(name: &impl std::fmt::Display) -> Deleted {
        Deleted {
            deleted: name.to_string(),
        }
    }
}
