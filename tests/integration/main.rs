//! Integration tests against real PostgreSQL servers (15 and 18) that the harness starts, a real
//! Secret Service keyring (run under `scripts/with-keyring.sh`), and isolated data folders.

mod harness;

mod activity;
mod alerts;
mod backup_faults;
mod backup_joblog;
mod backup_upkeep;
mod backups;
mod backups_parallel;
mod breaker;
mod connections;
mod e2e;
mod explain;
mod health;
mod history;
mod history_queries;
mod history_rollups;
mod index_health;
mod indexes_hypopg;
mod maintain;
mod maintain_settings;
mod maintain_trends;
mod monitor_cli;
mod otlp;
mod pool;
mod restore_split;
mod s3;
mod s3_copy;
mod schedules;
mod secrets;
mod sslmodes;
mod storage_folder;
mod tune;
mod webdriver;
