//! The testkit's servers and emulator, tested for real. One test binary so that the suite
//! links once.

mod api;
mod bitbucket;
mod servers;
