//! pgsteward's core: everything the desktop app and the CLI do, with no UI dependency.
//!
//! Start from [`steward::Steward`]; modules are one per domain (see the project README's map).

pub mod backup;
pub mod bindings;
pub mod charts;
pub mod cluster;
pub mod conn;
pub mod error;
pub mod ident;
pub mod joblog;
pub mod jobs;
pub mod maintain;
pub mod monitor;
pub mod pgbin;
pub mod project;
pub mod sandbox;
pub mod schedule;
pub mod secrets;
pub mod steward;
pub mod tune;

pub use error::{Error, ErrorCode, Result};
pub use steward::Steward;
