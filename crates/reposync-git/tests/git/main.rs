//! The git layer against real servers: reading changes, the local clone, the runner. One
//! test binary so that the suite links once.

mod changes;
mod clone;
mod common;
mod runner;
