//! End-to-end tests: the real `reposync` binary against real git servers (HTTPS and SSH),
//! one test binary so that the suite links once. The suites of Git Sync (`sync`, `webhooks`)
//! and of delegates run each test on each backend (`on_each_backend!`): SQLite always, and
//! PostgreSQL when `REPOSYNC_TEST_POSTGRES` names a test cluster (`scripts/test` starts one).

// First, so that its `on_each_backend!` is in scope in the suites after it.
#[macro_use]
mod common;

mod audit;
mod cli;
mod cluster;
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
