//! What reposync knows about Bitbucket: its webhook deliveries and its REST APIs.
//!
//! Bitbucket announces a push in four shapes (Cloud `repo:push`, Server/DC
//! `repo:refs_changed`, the "Post Webhooks for Bitbucket" plugin and the old Post-Receive
//! `refChanges` hook). [`normalise`] turns each into one [`Delivery`] with full ref names,
//! one change kind and optional commits, so nothing above this crate ever looks at a raw
//! payload; [`verify_signature`] checks the `X-Hub-Signature` HMAC. The design decision this
//! crate embodies is that a repository's identity comes only from structured fields
//! (workspace, project key, slug), never from the links inside a payload, and is compared with
//! a connector's clone URL by [`Repository::matches_clone_url`].
//!
//! The webhook half is pure: no I/O, no clock, no environment, no logging. It does not decide
//! what a delivery means for a sync (which branch matters, whether an unsigned ping is
//! accepted, which HTTP status an error becomes); its callers do.
//!
//! [`rest`] is the one part with I/O: the Cloud 2.0 and Data Center 1.0 REST clients for
//! reading (and, on Cloud, writing) without a clone, each request within its credential's
//! budget. They decide nothing about when REST is the better way; the delegate's fetch
//! planner does.

pub mod rest;
pub mod webhook;

pub use webhook::{
    ChangeKind, Delivery, DeliveryKind, PayloadError, RefChange, RefKind, Repository,
    SignatureError, WebhookFormat, normalise, sign, verify_signature,
};
