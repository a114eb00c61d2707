//! The store against real SQLite files. One test binary so that the suite links once.

mod audit;
mod entities;
mod reads;
mod store;
mod sync;
