//! The store against real databases: SQLite files, and PostgreSQL when a test cluster is
//! named (see `backends`). One test binary so that the suite links once.

#[macro_use]
mod backends;
mod audit;
mod entities;
mod reads;
mod replicas;
mod store;
mod sync;
mod transfer;
