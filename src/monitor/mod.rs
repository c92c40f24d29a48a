//! Monitoring: samples of the server's statistics and the rates computed between them.
//!
//! The walking skeleton keeps the recent samples of each project in memory and renders the
//! dashboard from them; the history store (SQLite, roll-ups) arrives with the monitoring issue.

pub mod dashboard;

pub use dashboard::{ConnectionsByState, DashboardSnapshot, RawSample, SampleRing};
