//! IPC commands, one module per domain; each is a thin adapter over a core call. Errors cross
//! as the core's `{code, message, sqlstate}`.

pub mod app;
pub mod backup;
pub mod dashboard;
pub mod history;
pub mod jobs;
pub mod maintain;
pub mod monitor;
pub mod project;
pub mod schedule;
pub mod storage;
pub mod tune;

pub type CmdResult<T> = Result<T, pgsteward::Error>;
