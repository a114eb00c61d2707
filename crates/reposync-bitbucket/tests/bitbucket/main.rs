//! reposync-bitbucket through its public API: webhook normalisation, and the REST clients
//! against the testkit's Bitbucket emulator over real HTTPS. One test binary so that the suite
//! links once.

mod rest;
mod webhook;
