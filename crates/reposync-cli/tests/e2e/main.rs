//! End-to-end tests: the real `reposync` binary against real git servers (HTTPS and SSH),
//! one test binary so that the suite links once.

mod audit;
mod cli;
mod common;
mod connectors;
mod delegates;
mod enable_all;
mod fetch;
mod formats;
mod offline;
mod planner;
mod serve;
mod store_migrate;
mod sync;
mod tree;
mod ui;
mod users;
mod webhooks;
