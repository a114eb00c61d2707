//! The OpenAPI 3.1 contract of `/api/v1`, generated from the code, never kept by hand.
//!
//! Each `/api/v1` handler carries a `#[utoipa::path]` annotation, and the wire types of
//! `reposync-api` derive their schemas (its `openapi` feature). The route table builds the
//! `/api/v1` router from those same annotated handlers (`utoipa_axum::routes!`), so a route
//! cannot exist without its entry in the document, nor the document name a route that does
//! not exist. The errors every route can answer, because a layer or an extractor answers them
//! (no token, a body that is not the JSON asked for, a failing database), are added here by
//! rule in [`complete`] rather than repeated on each handler.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};

use reposync_api::{ApiError, ApiErrorBody};

/// The name of the security scheme of API tokens, which every route but the document needs.
pub const API_TOKEN: &str = "api_token";

/// The parts of the document that no handler states: what it describes, the security scheme,
/// the error envelope and the tags.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "reposync",
        description = "The REST API of reposync, a configuration-as-code server that keeps \
            YAML in a Bitbucket repository and its own store in sync. Work that needs git is a \
            task: the request answers 202 with it, and `GET /api/v1/tasks/{id}?wait_ms=…` \
            long-polls its outcome. Every error is `{\"error\": {\"code\", \"message\", \
            \"field\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerToken),
    security(("api_token" = [])),
    components(schemas(ApiErrorBody, ApiError)),
    tags(
        (name = "meta", description = "The server's version and this document"),
        (name = "secrets", description = "Encrypted Text and SSH Key Credential secrets; values never come back"),
        (name = "connectors", description = "Git connectors (Source Repo Providers), their webhooks and Tests"),
        (name = "tasks", description = "Work done on delegates, long-polled"),
        (name = "tree", description = "The configuration tree: import, export, single files"),
        (name = "apps", description = "Applications and what they hold"),
        (name = "sync", description = "Git Sync: links, activity, errors"),
        (name = "webhooks", description = "The webhook delivery log"),
        (name = "delegates", description = "Delegates and their tokens"),
        (name = "audit", description = "The audit trail: who did what, from where, and how it ended"),
    )
)]
struct Base;

/// Declares the bearer scheme: `Authorization: Bearer <API token>`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: the one `reposync serve` writes at its first start, or \
                         one made since. Not a delegate token.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document the route table starts from, before the handlers' paths join it.
pub fn base() -> OpenApi {
    let mut openapi = Base::openapi();
    openapi.info.version = crate::VERSION.to_owned();
    openapi
}

/// Finishes the document by rule. Summaries are one line. Operation ids become `<tag>_<handler>`: utoipa names an
/// operation after its handler, and handlers of different resources share names (`list`,
/// `show`), while OpenAPI wants the ids unique. And it adds the responses that come from
/// layers and extractors rather than from handlers: `401` where the operation needs the API token; `400`, `413`, `415` and `422` where it
/// reads a JSON body; `500` everywhere. A handler that documents one of these statuses itself
/// keeps its own.
pub fn complete(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            // A handler's doc comment may wrap its first sentence; a summary is one line.
            if let Some(summary) = operation.summary.as_mut() {
                *summary = summary.replace('\n', " ");
            }
            if let (Some(tag), Some(id)) = (
                operation.tags.as_ref().and_then(|tags| tags.first()),
                operation.operation_id.as_mut(),
            ) {
                *id = format!("{tag}_{id}");
            }
            let public = operation.security.as_ref().is_some_and(|requirements| {
                requirements
                    .iter()
                    .all(|r| *r == SecurityRequirement::default())
            });
            let mut added = vec![(
                "500",
                "reposync itself failed (`internal`), for example its database",
            )];
            if !public {
                added.push((
                    "401",
                    "No API token, or one the server does not know (`unauthorized`)",
                ));
            }
            if operation.request_body.is_some() {
                added.extend([
                    ("400", "The body is not JSON (`malformed_json`)"),
                    (
                        "413",
                        "The body is larger than the server accepts (`body_too_large`)",
                    ),
                    (
                        "415",
                        "The body is not sent as `application/json` (`unsupported_media_type`)",
                    ),
                    (
                        "422",
                        "The body or a parameter is not valid; `field` names it (`invalid`)",
                    ),
                ]);
            }
            for (status, description) in added {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(description));
            }
        }
    }
}

/// A response carrying the error envelope.
pub fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ApiErrorBody")))
                    .build(),
            )
            .build(),
    )
}
