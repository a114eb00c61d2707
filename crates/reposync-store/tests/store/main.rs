//! The store against real SQLite files. One test binary so that the suite links once.

mod entities;
mod store;
mod sync;
