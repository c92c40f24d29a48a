// Generated from the Rust types by `UPDATE_BINDINGS=1 cargo test -p pgsteward --lib bindings`. Do not edit.

export type ErrorCode = "invalid_connection" | "invalid_input" | "project_not_found" | "project_exists" | "auth_failed" | "permission_denied" | "connect_failed" | "circuit_open" | "pool_timeout" | "query_failed" | "keyring_unavailable" | "secret_missing" | "backup_corrupt" | "backup_not_found" | "wrong_key" | "tool_missing" | "tool_failed" | "confirmation_required" | "cancelled" | "io" | "internal";
export type Error = { code: ErrorCode, message: string, 
/**
 * SQLSTATE reported by the server, when there was one.
 */
sqlstate: string | null, };
export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
export type ConnectionInput = { "kind": "uri", uri: string, } | { "kind": "key_value", conninfo: string, } | { "kind": "fields", host: string | null, port: number | null, user: string | null, dbname: string | null, sslmode: SslMode | null, };
export type ProjectInput = { name: string, connection: ConnectionInput, 
/**
 * Typed password; `None` keeps the stored one (on edit) or uses PGPASSWORD/.pgpass.
 */
password: string | null, };
export type ProjectSummary = { name: string, description: string, host: string | null, port: number | null, user: string | null, dbname: string | null, sslmode: SslMode | null, service: string | null, has_password: boolean, sandbox: boolean, created_at: string, };
export type ConnectionTest = { server_version: string, server_version_num: number, current_user: string, database: string, latency_ms: number, ssl: boolean, };
export type ConnectionsByState = { active: number, idle: number, idle_in_transaction: number, other: number, total: number, max_connections: number, };
export type DashboardSnapshot = { project: string, server_version: string, uptime_seconds: number, database: string, database_size_bytes: number, connections: ConnectionsByState, 
/**
 * Transactions (commits + rollbacks, all databases) per second since the previous sample.
 */
tps: number | null, 
/**
 * Share of block reads served from shared buffers since the previous sample (0..1).
 */
cache_hit_ratio: number | null, tps_chart_svg: string, cache_chart_svg: string, sampled_at: string, interval_seconds: number, };
export type BackupSummary = { id: string, project: string, database: string, created_at: string, finished_at: string, server_version: string, plaintext_bytes: number, stored_bytes: number, duration_ms: number, };
export type JobKind = "backup" | "restore";
export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export type JobProgress = { job_id: string, kind: JobKind, project: string, status: JobStatus, 
/**
 * What the job is doing now ("dumping", "verifying", "restoring").
 */
phase: string, bytes: number, rate_bytes_per_sec: number, elapsed_ms: number, message: string | null, };
export type RestoreTarget = { "kind": "new_database", name: string, } | { "kind": "same_database", confirm: string, };
export type RestoreReport = { backup_id: string, database: string, bytes: number, duration_ms: number, };
export type AppInfo = { version: string, data_dir: string, 
/**
 * Start the sandbox without asking when there is no project.
 */
auto_sandbox: boolean, };
