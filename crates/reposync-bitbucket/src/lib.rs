//! Bitbucket Cloud 2.0 and Server 1.0 REST clients, webhook payload normalisation and HMAC
//! signature checks.
//!
//! Empty for now: the connector issue needs none of it. Webhook intake and the REST fetch
//! planner arrive with the Git Sync issues. Like `reposync-model`, it will hold no I/O
//! policy of its own beyond HTTP calls made through a client it is given.
