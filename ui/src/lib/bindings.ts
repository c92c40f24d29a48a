// Generated from the Rust types by `UPDATE_BINDINGS=1 cargo test -p pgsteward --lib bindings`. Do not edit.

export type ErrorCode = "invalid_connection" | "invalid_input" | "project_not_found" | "project_exists" | "auth_failed" | "permission_denied" | "connect_failed" | "circuit_open" | "pool_timeout" | "query_failed" | "keyring_unavailable" | "secret_missing" | "backup_corrupt" | "backup_not_found" | "wrong_key" | "tool_missing" | "tool_failed" | "confirmation_required" | "cancelled" | "busy" | "io" | "storage_failed" | "plan_changed" | "otlp_unreachable" | "otlp_rejected" | "internal";
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
export type ActivityFilter = { 
/**
 * A `pg_stat_activity` state; `idle-in-transaction` and `idle_in_transaction` are accepted.
 */
state?: string, user?: string, application?: string, database?: string, 
/**
 * Only sessions whose open transaction or running query has lasted at least this long.
 * Sessions idle outside a transaction have no such duration and are left out.
 */
min_duration_seconds?: number, 
/**
 * Flag work running longer than this (default 60 s).
 */
long_running_seconds?: number, 
/**
 * At most this many sessions (default 500).
 */
limit?: number, };
export type Session = { pid: number, user: string | null, application: string | null, database: string | null, 
/**
 * Client address; `None` for a Unix socket or a background process.
 */
client_addr: string | null, 
/**
 * "client backend", "autovacuum worker", "walsender"...
 */
backend_type: string | null, state: string | null, wait_event_type: string | null, wait_event: string | null, 
/**
 * Current or last query, at most [`QUERY_TEXT_LIMIT`] characters.
 */
query: string | null, query_truncated: boolean, backend_seconds: number | null, 
/**
 * Age of the open transaction.
 */
xact_seconds: number | null, 
/**
 * Time since the current (or last) query started.
 */
query_seconds: number | null, 
/**
 * Time since the state last changed.
 */
state_seconds: number | null, 
/**
 * Sessions holding the lock this one waits for.
 */
blocked_by: Array<number>, 
/**
 * Running a query or holding a transaction open longer than the threshold.
 */
long_running: boolean, idle_in_transaction: boolean, 
/**
 * The session pgsteward read this list through.
 */
own_session: boolean, 
/**
 * A session of pgsteward (its application name), this process's or another's.
 */
pgsteward: boolean, };
export type ActivityReport = { sessions: Array<Session>, 
/**
 * More sessions matched than the limit allowed.
 */
truncated: boolean, long_running_seconds: number, 
/**
 * Backend pid of the session that read the list.
 */
own_pid: number, sampled_at: string, };
export type BlockingNode = { pid: number, user: string | null, database: string | null, application: string | null, state: string | null, query: string | null, wait_event_type: string | null, wait_event: string | null, 
/**
 * Lock mode this session waits for, e.g. "ShareLock", "AccessExclusiveLock".
 */
waiting_for_mode: string | null, 
/**
 * Kind of lock it waits for: "relation", "transactionid", "tuple"...
 */
lock_type: string | null, 
/**
 * Relation involved, when known (in the database pgsteward is connected to).
 */
relation: string | null, waiting_seconds: number | null, 
/**
 * Age of the session's open transaction.
 */
xact_seconds: number | null, 
/**
 * Every session it waits for (it is shown under the first one the walk reaches).
 */
blocked_by: Array<number>, 
/**
 * Sessions waiting behind this one, directly or further down.
 */
blocks_total: number, 
/**
 * Part of a wait cycle: the server's deadlock detector will cancel one of them.
 */
in_cycle: boolean, 
/**
 * This session's subtree is already shown elsewhere in the tree.
 */
shown_elsewhere: boolean, 
/**
 * Something the row alone does not say (prepared transaction, ended session...).
 */
note: string | null, children: Array<BlockingNode>, };
export type BlockingTree = { roots: Array<BlockingNode>, 
/**
 * Sessions waiting for a lock held by another session.
 */
waiting: number, 
/**
 * Some sessions wait for each other in a cycle.
 */
cycles: boolean, 
/**
 * More sessions were involved than were read.
 */
truncated: boolean, sampled_at: string, };
export type SignalKind = "cancel" | "terminate";
export type SignalOutcome = { pid: number, action: SignalKind, 
/**
 * The server sent the signal (false: no backend with that pid, e.g. it ended already).
 */
signalled: boolean, message: string, };
export type MisestimateLevel = "ok" | "tenfold" | "hundredfold" | "thousandfold";
export type Misestimate = { 
/**
 * max(estimated, actual) / min(estimated, actual), both per loop and counted as at least 1.
 */
factor: number, 
/**
 * The planner expected fewer rows than came.
 */
underestimated: boolean, level: MisestimateLevel, };
export type Buffers = { shared_hit: number, shared_read: number, shared_dirtied: number, shared_written: number, local_hit: number, local_read: number, temp_read: number, temp_written: number, };
export type HintKind = "seq_scan_selective" | "sort_spill" | "hash_spill" | "misestimate" | "nested_loop_many_outer";
export type PlanHint = { 
/**
 * `id` of the node the hint is about.
 */
node_id: number, kind: HintKind, message: string, };
export type PlanNode = { 
/**
 * Position in a depth-first walk, from 0 at the root.
 */
id: number, 
/**
 * "Seq Scan", "Hash Join", "Sort"... (for ModifyTable, the operation: "Delete"...).
 */
node_type: string, 
/**
 * "Outer", "Inner", "InitPlan", "SubPlan"...
 */
parent_relationship: string | null, join_type: string | null, relation: string | null, alias: string | null, index: string | null, 
/**
 * "Subplan Name" ("CTE d", "InitPlan 1"...) of a subplan's top node, or the CTE a CTE Scan reads.
 */
subplan: string | null, filter: string | null, index_cond: string | null, 
/**
 * Hash, merge or join condition.
 */
join_cond: string | null, sort_key: Array<string>, startup_cost: number, total_cost: number, 
/**
 * Rows the planner expected, per loop.
 */
estimated_rows: number, 
/**
 * Rows produced, per loop (ANALYZE only).
 */
actual_rows: number | null, 
/**
 * Times the node ran (ANALYZE only; 0 = never executed).
 */
loops: number | null, 
/**
 * Rows produced over all loops.
 */
actual_rows_total: number | null, 
/**
 * Rows read and thrown away by the filter, over all loops.
 */
rows_removed_by_filter: number | null, misestimate: Misestimate | null, 
/**
 * Time in this node and its children over all loops, in milliseconds.
 */
inclusive_ms: number | null, 
/**
 * Time in this node alone (inclusive minus children, never below 0), in milliseconds.
 * A CTE's own plan is not subtracted from its owner: the CTE Scan reading it counts it.
 */
exclusive_ms: number | null, buffers: Buffers | null, workers_planned: number | null, workers_launched: number | null, sort_method: string | null, 
/**
 * "Memory" or "Disk".
 */
sort_space_type: string | null, sort_space_kb: number | null, hash_batches: number | null, original_hash_batches: number | null, hints: Array<PlanHint>, children: Array<PlanNode>, };
export type TriggerTime = { name: string, relation: string | null, constraint: string | null, time_ms: number, calls: number, };
export type ExplainReport = { 
/**
 * The statement was executed (ANALYZE), then rolled back.
 */
analyzed: boolean, 
/**
 * The statement changes data; its changes were rolled back.
 */
data_changing: boolean, 
/**
 * Sentences to show above the plan (rollback, sequences...).
 */
warnings: Array<string>, planning_ms: number | null, execution_ms: number | null, plan: PlanNode, 
/**
 * Plans of further queries the statement was rewritten into (rules); rarely present.
 */
other_plans: Array<PlanNode>, triggers: Array<TriggerTime>, 
/**
 * Every hint of the tree, in tree order.
 */
hints: Array<PlanHint>, 
/**
 * The JSON PostgreSQL returned, for saving or other viewers.
 */
json: string, };
export type HealthStatus = "ok" | "warning" | "critical" | "unknown";
export type CheckId = "xid_wraparound" | "multixact_wraparound" | "oldest_tables" | "sequences" | "invalid_indexes" | "replication_slots" | "connections" | "cache_hit_ratio" | "pg_stat_statements";
export type HealthItem = { name: string, status: HealthStatus, value: number | null, figure: string, message: string, };
export type HealthCheck = { id: CheckId, title: string, status: HealthStatus, 
/**
 * The figure judged, as a number (its meaning depends on the check).
 */
value: number | null, 
/**
 * The figure judged, for people ("1.2 % of max", "98.5 %").
 */
figure: string, 
/**
 * What it means and what to do.
 */
message: string, items: Array<HealthItem>, 
/**
 * Why the check could not run (status unknown).
 */
error: Error | null, duration_ms: number, };
export type HealthReport = { 
/**
 * Database the per-database checks looked at.
 */
database: string, server_version: string, 
/**
 * The most serious status of all checks.
 */
status: HealthStatus, checks: Array<HealthCheck>, checked_at: string, };
export type BackupSummary = { id: string, project: string, database: string, created_at: string, finished_at: string, server_version: string, plaintext_bytes: number, stored_bytes: number, duration_ms: number, 
/**
 * The latest verification of this backup (a restore counts as a full one), if any.
 */
last_check: VerifyReport | null, };
export type JobKind = "backup" | "restore" | "verify" | "copy";
export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export type JobLogKind = "phase" | "command" | "stderr" | "outcome";
export type JobLogEntry = { 
/**
 * RFC 3339, UTC.
 */
at: string, kind: JobLogKind, text: string, };
export type JobProgress = { job_id: string, kind: JobKind, project: string, status: JobStatus, 
/**
 * What the job is doing now ("dumping", "verifying", "restoring").
 */
phase: string, bytes: number, 
/**
 * Bytes per second in the current phase.
 */
rate_bytes_per_sec: number, elapsed_ms: number, message: string | null, 
/**
 * Bytes the current phase will handle in all, when knowable (for a backup's dump phase an
 * estimate from the table sizes: see `total_is_estimate`).
 */
total_bytes: number | null, 
/**
 * `total_bytes` is an estimate, not a count.
 */
total_is_estimate: boolean, 
/**
 * Time left in this phase at the current rate, when the total and a rate are known.
 */
eta_ms: number | null, 
/**
 * The job's log so far, oldest first.
 */
log: Array<JobLogEntry>, };
export type JobRun = { job_id: string, 
/**
 * `backup`, `restore`, `verify`, `recovery_test` or `copy`.
 */
kind: string, 
/**
 * The backup the job made or worked on, when there is one.
 */
backup_id: string | null, 
/**
 * RFC 3339, UTC.
 */
started_at: string, duration_ms: number, 
/**
 * `succeeded`, `failed` or `cancelled`.
 */
outcome: string, 
/**
 * The error's stable code when it failed.
 */
code: string | null, message: string, 
/**
 * Oldest first; empty in lists (read one run for its log).
 */
log: Array<JobLogEntry>, };
export type BackupChoices = { 
/**
 * Parallel pg_dump jobs and uploads, 1 to the CPUs (at most 8).
 */
jobs: number | null, 
/**
 * `zstd`, `gzip` or `none`.
 */
compression: string | null, 
/**
 * Also keep the globals (roles, tablespaces).
 */
globals: boolean | null, };
export type BackupDefaults = { jobs: number, 
/**
 * The most jobs allowed: this computer's CPUs, at most 8.
 */
max_jobs: number, compression: string, globals: boolean, 
/**
 * `directory` (parallel) or `custom` (one stream, one job), from `BACKUP_FORMAT`.
 */
format: string, };
export type RestoreTarget = { "kind": "new_database", name: string, } | { "kind": "same_database", confirm: string, };
export type RestoreReport = { backup_id: string, database: string, bytes: number, duration_ms: number, 
/**
 * What the user should know: globals statements that were skipped.
 */
notes: Array<string>, };
export type VerifyTier = "quick" | "sampled" | "full" | "recovery";
export type VerifyReport = { backup_id: string, tier: VerifyTier, ok: boolean, 
/**
 * What was found wrong, or what was checked.
 */
message: string, 
/**
 * Stored bytes read to check.
 */
bytes_read: number, duration_ms: number, verified_at: string, };
export type PruneDecision = { backup_id: string, created_at: string, delete: boolean, 
/**
 * Why it is kept or let go.
 */
reason: string, };
export type PruneReport = { dry_run: boolean, decisions: Array<PruneDecision>, 
/**
 * Backups deleted (none on a dry run).
 */
deleted: Array<string>, 
/**
 * Interrupted backups (objects without a manifest) removed.
 */
incomplete_removed: Array<string>, 
/**
 * Backups whose manifests could not be read: never deleted automatically.
 */
unreadable: Array<string>, };
export type AlertRule = "server_down" | "slow_queries" | "statement_latency" | "pool_utilisation" | "cache_hit_ratio" | "backup_failures" | "maintenance_failures";
export type Direction = "above" | "below";
export type RuleConfig = { rule: AlertRule, enabled: boolean, direction: Direction, threshold: number, 
/**
 * The value has to come back past this to resolve.
 */
clear: number, for_samples: number, unit: string, };
export type AlertConfig = { rules: Array<RuleConfig>, };
export type AlertRecord = { id: number, rule: string, started_at: number, 
/**
 * `None` while it is still firing.
 */
ended_at: number | null, 
/**
 * The value that made it fire.
 */
value: number, 
/**
 * The worst value while it fired.
 */
worst: number, threshold: number, message: string, };
export type AlertTransition = { rule: AlertRule, firing: boolean, value: number, message: string, };
export type AlertsReport = { project: string, rules: Array<RuleConfig>, firing: Array<AlertRecord>, 
/**
 * Alerts of the last 7 days, newest first.
 */
history: Array<AlertRecord>, };
export type AvailabilityWindow = { 
/**
 * "24h", "7d" or "30d".
 */
window: string, 
/**
 * Share of probes that reached the server; `None` without probes.
 */
ratio: number | null, probes: number, down: number, meets_target: boolean | null, 
/**
 * Mean probe latency over the window.
 */
mean_latency_ms: number | null, };
export type AvailabilityReport = { project: string, target: number, windows: Array<AvailabilityWindow>, };
export type TableFact = { 
/**
 * Schema-qualified, quoted as SQL needs it.
 */
name: string, rows: number, checksum: string | null, };
export type AmcheckReport = { indexes_checked: number, 
/**
 * Index and error for each index that failed.
 */
failures: Array<string>, };
export type RecoveryReport = { backup_id: string, server_major: number, ok: boolean, message: string, 
/**
 * Time from starting the restore (including its verification) to a usable database.
 */
rto_ms: number, tables_recorded: number, tables_compared: number, checksums_compared: number, mismatches: Array<string>, 
/**
 * `None` when amcheck is not available for that server.
 */
amcheck: AmcheckReport | null, tested_at: string, };
export type KeyRotation = { old_key_id: string, new_key_id: string, 
/**
 * Backups whose data key was re-wrapped (their objects are untouched).
 */
rewrapped: number, };
export type KitImport = { key_id: string, 
/**
 * False when the keyring already held this very key.
 */
changed: boolean, 
/**
 * Backups the imported key opens.
 */
backups_readable: number, };
export type S3Settings = { bucket: string, 
/**
 * Folder inside the bucket; each project gets its own folder below it.
 */
prefix: string, 
/**
 * Endpoint URL of an S3-compatible service; `None` means AWS.
 */
endpoint: string | null, region: string, 
/**
 * Allow plain-HTTP endpoints (only for services on a trusted network).
 */
allow_http: boolean, access_key_id: string, };
export type StorageSettings = { "kind": "local" } | { "kind": "s3" } & S3Settings | { "kind": "folder", path: string, };
export type StorageInfo = { storage: StorageSettings, 
/**
 * Where backups are written, in words.
 */
location: string, 
/**
 * An S3 secret access key is in the keyring for `storage`.
 */
has_secret: boolean, copy_target: S3Settings | null, copy_location: string | null, copy_has_secret: boolean, };
export type CopyReport = { 
/**
 * The copy target, in words.
 */
target: string, 
/**
 * Backups copied and verified on the target.
 */
copied: Array<string>, 
/**
 * Backups the target already held (their manifests authenticate there).
 */
already_there: Array<string>, 
/**
 * Every backup the target lists afterwards.
 */
target_backups: Array<string>, };
export type OtlpSettings = { 
/**
 * The collector's OTLP/HTTP base URL, e.g. `http://collector:4318`; `/v1/metrics` is
 * appended unless the URL already ends with it.
 */
endpoint: string, 
/**
 * A header sent with every export (e.g. `Authorization`); its value is in the keyring.
 */
header_name: string | null, };
export type OtlpInfo = { project: string, settings: OtlpSettings | null, 
/**
 * The URL exports are posted to.
 */
url: string | null, 
/**
 * A header value is in the keyring.
 */
has_header_value: boolean, 
/**
 * Exports that went through in this process.
 */
exported: number, 
/**
 * Exports that failed after their retries, in this process.
 */
failures: number, last_error: string | null, };
export type AppInfo = { version: string, data_dir: string, 
/**
 * Start the sandbox without asking when there is no project.
 */
auto_sandbox: boolean, };
export type MaintenanceWindow = { 
/**
 * "HH:MM"
 */
start: string, 
/**
 * "HH:MM"
 */
end: string, };
export type GuardLimits = { 
/**
 * Sessions allowed to wait on a lock the maintenance session holds ...
 */
max_waiting_sessions: number, 
/**
 * ... once they have waited this long, seconds.
 */
lock_wait_grace_seconds: number, 
/**
 * Active client sessions (besides maintenance) above which it stops; `None`: no limit.
 */
max_active_sessions: number | null, 
/**
 * Mean time the other active client statements have been running, milliseconds, above
 * which it stops; `None`: no limit.
 */
max_statement_latency_ms: number | null, 
/**
 * Replication lag (bytes of WAL not yet replayed on a standby) above which it stops.
 */
max_replication_lag_bytes: number | null, 
/**
 * How often the guard (and progress) looks, milliseconds.
 */
poll_interval_ms: number, };
export type MaintenanceConfig = { window: MaintenanceWindow, 
/**
 * IANA time zone the window is read in (MAINTENANCE_TIME_ZONE); the computer's local time
 * when unset.
 */
time_zone: string | null, 
/**
 * VACUUM when dead tuples reach this share of all tuples (percent).
 */
vacuum_threshold_percent: number, 
/**
 * ANALYZE when rows changed since the last analyze reach this share (percent).
 */
analyze_threshold_percent: number, 
/**
 * REINDEX when measured index bloat reaches this share (percent).
 */
reindex_threshold_percent: number, 
/**
 * Tables with fewer rows than this are left alone (unless their xid age matters).
 */
min_rows: number, 
/**
 * Tables (and indexes) smaller than this are left alone (unless their xid age matters).
 */
min_bytes: number, 
/**
 * VACUUM (FREEZE) when age(relfrozenxid) passes this share of autovacuum_freeze_max_age.
 */
freeze_age_fraction: number, 
/**
 * Tables larger than this are measured with pgstattuple_approx instead of pgstattuple.
 */
approx_above_bytes: number, 
/**
 * Index bytes a plan measures with pgstatindex by itself (it reads every page, about two
 * minutes per GiB); `--measure` lifts the limit.
 */
measure_budget_bytes: number, 
/**
 * lock_timeout of maintenance statements, in seconds.
 */
lock_timeout_seconds: number, 
/**
 * The smallest statement_timeout a maintenance statement gets, in seconds.
 */
min_statement_timeout_seconds: number, guard: GuardLimits, };
export type TableStats = { oid: number, schema: string, name: string, live_tuples: number, dead_tuples: number, 
/**
 * Rows inserted, updated or deleted since the last ANALYZE.
 */
mod_since_analyze: number, 
/**
 * The planner's row count (-1 when never analyzed or vacuumed).
 */
reltuples: number, relpages: number, seq_scan: number, seq_tup_read: number, idx_scan: number, last_vacuum: string | null, last_autovacuum: string | null, last_analyze: string | null, last_autoanalyze: string | null, heap_bytes: number, toast_bytes: number, index_bytes: number, 
/**
 * age(relfrozenxid).
 */
xid_age: number, fillfactor: number, 
/**
 * `reloptions` as "name=value".
 */
options: Array<string>, columns: number, columns_with_stats: number, 
/**
 * Sum over columns of (1 - null_frac) × avg_width, bytes.
 */
data_width: number, has_nulls: boolean, };
export type IndexStats = { oid: number, table_oid: number, schema: string, table: string, name: string, 
/**
 * Access method: btree, hash, gin, gist, brin...
 */
method: string, scans: number, bytes: number, relpages: number, reltuples: number, valid: boolean, unique: boolean, primary: boolean, partial: boolean, expression: boolean, 
/**
 * Backs a constraint (primary key, unique, exclusion) or one depends on it (foreign key).
 */
backs_constraint: boolean, 
/**
 * Column numbers (0 for an expression), key columns first.
 */
columns: Array<number>, key_columns: number, definition: string, fillfactor: number, deduplicate_items: boolean, 
/**
 * Sum of avg_width of the indexed columns, bytes.
 */
data_width: number, columns_with_stats: number, 
/**
 * n_distinct of the leading column (negative: a fraction of the rows).
 */
leading_n_distinct: number | null, };
export type FigureSource = "estimated" | "measured" | "measured_approx";
export type BloatCaveat = "missing_statistics" | "toast_heavy" | "tiny" | "partial_index" | "expression_index" | "deduplicated" | "not_btree";
export type BloatFigure = { source: FigureSource, 
/**
 * Share of the relation that is not live data, percent.
 */
bloat_percent: number, bloat_bytes: number, actual_bytes: number, 
/**
 * Dead tuples, percent (measured tables only).
 */
dead_percent: number | null, 
/**
 * Reasons the figure is unreliable; empty for a measured figure.
 */
caveats: Array<BloatCaveat>, };
export type ActionKind = "vacuum_freeze" | "vacuum" | "vacuum_analyze" | "analyze" | "reindex" | "cluster";
export type PlannedAction = { 
/**
 * Stable id: the oid of the relation worked on (the index for REINDEX, else the table) times
 * ten plus a digit for the kind, so two plans of an unchanged database give an action the
 * same id and `run --ids` from an earlier plan runs the action meant, or fails.
 */
id: number, kind: ActionKind, schema: string, table: string, index: string | null, 
/**
 * The statement, identifiers quoted.
 */
sql: string, 
/**
 * The lock it takes on the table.
 */
lock: string, 
/**
 * The facts that call for it, one sentence each.
 */
evidence: Array<string>, 
/**
 * An estimate from the relation sizes, not a promise.
 */
estimated_seconds: number, 
/**
 * The statement_timeout it runs under.
 */
statement_timeout_seconds: number, 
/**
 * Bytes of the relations it works on.
 */
bytes: number, 
/**
 * Bloat figure behind a REINDEX (measured) or seen on the table.
 */
bloat: BloatFigure | null, };
export type PlanRequest = { 
/**
 * CLUSTER this table (name or schema.name) ...
 */
cluster_table: string | null, 
/**
 * ... on this index.
 */
cluster_index: string | null, 
/**
 * Measure the tables with actions exactly (pgstattuple) instead of estimating only.
 */
measure: boolean, };
export type TableEntry = { stats: TableStats, estimate: BloatFigure, measured: BloatFigure | null, 
/**
 * Left out of the plan for being under the minimum size.
 */
below_minimum: boolean, };
export type IndexEntry = { stats: IndexStats, estimate: BloatFigure, measured: BloatFigure | null, };
export type MaintenancePlan = { project: string, generated_at: string, config: MaintenanceConfig, actions: Array<PlannedAction>, tables: Array<TableEntry>, indexes: Array<IndexEntry>, autovacuum_freeze_max_age: number, pgstattuple_installed: boolean, 
/**
 * Things the DBA should know (an unconfirmed bloat estimate, a missing extension...).
 */
notes: Array<string>, };
export type RunMode = "approve" | "automatic";
export type ActionOutcome = "succeeded" | "failed" | "cancelled";
export type ActionRun = { action_id: number, kind: ActionKind, schema: string, table: string, index: string | null, sql: string, outcome: ActionOutcome, 
/**
 * Why it failed or was cancelled.
 */
reason: string | null, 
/**
 * The impact guard stopped it.
 */
guard_tripped: boolean, 
/**
 * Unix milliseconds.
 */
started_at: number, duration_ms: number, dead_before: number | null, dead_after: number | null, 
/**
 * Bytes of the table (with TOAST and indexes), or of the index for a REINDEX.
 */
size_before: number | null, size_after: number | null, };
export type RunReport = { project: string, run_id: string, mode: RunMode, 
/**
 * Time of day the window was judged by, and in which zone.
 */
local_time: string, time_zone: string, inside_window: boolean, runs: Array<ActionRun>, 
/**
 * Why the run stopped before the end of its list (window closed, guard, cancel).
 */
stopped: string | null, };
export type RunRequest = { mode: RunMode, 
/**
 * Plan ids to run (approve mode).
 */
ids: Array<number>, 
/**
 * Every planned action (approve mode).
 */
all: boolean, 
/**
 * How to build the plan the ids refer to.
 */
plan: PlanRequest, };
export type RunningMaintenance = { pid: number, 
/**
 * vacuum, create_index or cluster.
 */
kind: string, relation: string | null, phase: string | null, percent: number | null, backend_type: string | null, application: string | null, };
export type MaintenanceProgress = { action_id: number, kind: ActionKind, 
/**
 * The table or index worked on.
 */
target: string, 
/**
 * PostgreSQL's phase name ("scanning heap", "building index"...), when it reports one.
 */
phase: string | null, 
/**
 * Bytes of the table scanned so far (or blocks done for an index build).
 */
bytes_done: number, elapsed_ms: number, };
export type MaintenanceRecord = { id: number, run_id: string, mode: string, kind: string, schema: string, table: string, index: string | null, sql: string, outcome: string, reason: string | null, guard_tripped: boolean, started_at: number, duration_ms: number, dead_before: number | null, dead_after: number | null, size_before: number | null, size_after: number | null, };
export type MaintenanceHistory = { records: Array<MaintenanceRecord>, 
/**
 * Runs of the last 30 days.
 */
total: number, succeeded: number, failed: number, cancelled: number, 
/**
 * `None` when nothing ran in the last 30 days.
 */
success_rate_percent: number | null, target_percent: number, meets_target: boolean | null, };
export type AutovacuumAdvice = { schema: string, table: string, rows: number, 
/**
 * `name=value` pairs suggested.
 */
settings: Array<string>, reason: string, sql: string, };
export type AutovacuumWorker = { pid: number, database: string | null, relation: string | null, phase: string | null, 
/**
 * heap_blks_scanned / heap_blks_total, percent.
 */
percent_scanned: number | null, running_seconds: number | null, query: string | null, };
export type AutovacuumReport = { advice: Array<AutovacuumAdvice>, workers: Array<AutovacuumWorker>, max_workers: number, };
export type MaintenanceStatus = { project: string, window: MaintenanceWindow, time_zone: string, local_time: string, inside_window: boolean, pgstattuple_installed: boolean, 
/**
 * VACUUM, CREATE INDEX / REINDEX and CLUSTER running on the server now.
 */
running: Array<RunningMaintenance>, autovacuum: AutovacuumReport, last_run: MaintenanceRecord | null, success_rate_percent: number | null, target_percent: number, };
export type MaintenanceSettings = { project: string, 
/**
 * Set for this project (`maintenance.json`), by name (window, zone, thresholds and guard
 * limits); they win over the environment.
 */
overrides: { [key in string]: string }, 
/**
 * Defaults, then the environment, then the overrides.
 */
config: MaintenanceConfig, };
export type IndexFindingKind = "unused" | "duplicate" | "redundant" | "invalid";
export type IndexFinding = { kind: IndexFindingKind, schema: string, table: string, index: string, bytes: number, scans: number, 
/**
 * The other index (for duplicate and redundant).
 */
other: string | null, detail: string, 
/**
 * What to do about it.
 */
sql: string, };
export type MissingIndexSource = "statement" | "table_scans";
export type MissingIndex = { schema: string, table: string, column: string, seq_scan: number, avg_rows_per_seq_scan: number, sql: string, 
/**
 * Checked with hypopg: the statement's estimated cost drops with the index.
 */
validated: boolean, note: string, source: MissingIndexSource, 
/**
 * The statement that would use it (normalised by pg_stat_statements).
 */
statement: string | null, calls: number | null, 
/**
 * Estimated cost of the statement now (generic plan) ...
 */
cost_before: number | null, 
/**
 * ... and with a hypothetical index on the column (hypopg).
 */
cost_after: number | null, };
export type IndexReport = { project: string, findings: Array<IndexFinding>, missing: Array<MissingIndex>, 
/**
 * Indexes looked at.
 */
indexes: Array<IndexStats>, stats_reset: string | null, 
/**
 * hypopg installed in the database (candidates can be validated).
 */
hypopg_installed: boolean, 
/**
 * What limited the candidates (missing extensions, statements left out).
 */
notes: Array<string>, };
export type TrendPoint = { ts: number, live_tuples: number, dead_tuples: number, total_bytes: number, 
/**
 * Estimated, or measured where a measurement was at hand when the snapshot was taken.
 */
bloat_bytes: number, 
/**
 * The bloat figure was measured (pgstattuple), not estimated.
 */
measured: boolean, };
export type TrendChart = { id: string, title: string, svg: string, };
export type MaintenanceTrends = { project: string, 
/**
 * `None` for the whole database.
 */
schema: string | null, table: string | null, points: Array<TrendPoint>, charts: Array<TrendChart>, };
export type Workload = "web" | "oltp" | "dw" | "desktop" | "mixed";
export type StorageKind = "ssd" | "hdd" | "san" | "nvme";
export type OsKind = "linux" | "windows" | "mac";
export type DbSize = "unknown" | "smaller_than_ram" | "larger_than_ram";
export type ProfileSource = "entered" | "detected" | "saved";
export type HardwareProfile = { 
/**
 * RAM available to PostgreSQL, in kB (1 GB = 1048576 kB).
 */
ram_kb: number, 
/**
 * CPUs; `None` when unknown (PGTune then skips the parallelism settings).
 */
cpus: number | null, storage: StorageKind, workload: Workload, 
/**
 * Expected connections; `None` takes the workload's default.
 */
connections: number | null, db_size: DbSize, os: OsKind, source: ProfileSource, };
export type ProfileInput = { 
/**
 * RAM with a unit: "16GB", "512MB", "2TB", "1048576kB".
 */
ram: string | null, cpus: number | null, storage: string | null, workload: string | null, connections: number | null, db_size: string | null, os: string | null, };
export type Group = "memory" | "connections" | "wal" | "planner" | "parallelism" | "autovacuum" | "logging";
export type Confidence = "low" | "medium" | "high";
export type TuneBasis = "hardware" | "evidence" | "both";
export type TakesEffect = "reload" | "restart" | "not_a_setting";
export type Recommendation = { 
/**
 * The setting name (or `connection_pooling` for advice that is not a setting).
 */
name: string, group: Group, 
/**
 * Current value in human units.
 */
current: string | null, 
/**
 * Recommended value in human units; also the literal `ALTER SYSTEM` receives.
 */
recommended: string | null, 
/**
 * True when the recommendation differs from the current value.
 */
changes: boolean, reason: string, evidence: Array<string>, expected_effect: string | null, confidence: Confidence, basis: TuneBasis, takes_effect: TakesEffect, 
/**
 * How the value was moved to stay inside this server's bounds.
 */
adjustment: string | null, 
/**
 * The server already has a changed value waiting for a restart.
 */
pending_restart: boolean, };
export type RecommendationGroup = { group: Group, title: string, items: Array<Recommendation>, };
export type MemoryParts = { shared_buffers_kb: number, 
/**
 * work_mem × max_connections: the worst case of one sort per connection.
 */
work_mem_total_kb: number, maintenance_kb: number, 
/**
 * effective_cache_size: what the OS is expected to cache.
 */
os_cache_kb: number, };
export type MemoryBudget = { ram_kb: number, now: MemoryParts, after: MemoryParts, };
export type TuneReport = { project: string, server_version: string, server_version_num: number, profile: HardwareProfile, groups: Array<RecommendationGroup>, memory: MemoryBudget, memory_chart_svg: string, 
/**
 * ALTER SYSTEM statements for the changed settings, to run by hand.
 */
script_sql: string, 
/**
 * The same as postgresql.conf lines.
 */
conf_snippet: string, 
/**
 * Why the statistics could not be read (the hardware baseline is still given).
 */
evidence_error: Error | null, };
export type SettingChange = { name: string, 
/**
 * The value as PostgreSQL accepts it ("64MB", "on", "0.9").
 */
value: string, };
export type AppliedSetting = { name: string, 
/**
 * Value before, in human units.
 */
previous: string, 
/**
 * What was written to postgresql.auto.conf; `None` when the entry was removed.
 */
written: string | null, 
/**
 * Value the server uses now, in human units.
 */
now: string, 
/**
 * Written but waiting for a restart.
 */
pending_restart: boolean, needs_restart: boolean, };
export type ApplyReport = { project: string, 
/**
 * "apply" or "rollback".
 */
action: string, 
/**
 * The history entry this created or undid.
 */
history_id: string, settings: Array<AppliedSetting>, 
/**
 * Some settings wait for a server restart.
 */
restart_needed: boolean, };
export type CollectorId = "database" | "activity" | "statements" | "checkpoints" | "wal" | "replication" | "locks" | "sizes";
export type CollectorFailure = { collector: string, code: string, message: string, };
export type MetricValue = { metric: string, label: string, value: number, };
export type CounterDelta = { counter: string, label: string, delta: number, 
/**
 * Server time between the two readings.
 */
seconds: number, };
export type QueryEvent = { ts: number, 
/**
 * `slow_statement` (mean over an interval above the threshold, from pg_stat_statements)
 * or `long_running` (an active session running longer than the threshold).
 */
kind: string, queryid: string | null, pid: number | null, database: string | null, user: string | null, 
/**
 * Mean time per call over the interval (slow_statement) or time running so far
 * (long_running), in milliseconds.
 */
duration_ms: number, calls: number | null, threshold_ms: number, query: string, 
/**
 * When the query run started (long_running), UTC ms; with the pid it names the run.
 */
started_at: number | null, };
export type SampleReport = { project: string, ts: number, sampled_at: string, server_version_num: number, 
/**
 * Collectors that read their views.
 */
collectors_ok: Array<CollectorId>, 
/**
 * Collectors that failed, and why; the rest of the sample is stored regardless.
 */
failures: Array<CollectorFailure>, 
/**
 * Rates and gauges stored with this sample. Rates need a previous sample: the first
 * sample of a project stores gauges only.
 */
metrics: Array<MetricValue>, deltas: Array<CounterDelta>, 
/**
 * Queries whose pg_stat_statements counters moved since the previous sample.
 */
statements_recorded: number, 
/**
 * Slow-query events recorded by this sample.
 */
events: Array<QueryEvent>, 
/**
 * Things worth knowing that are not failures (e.g. how to enable pg_stat_statements).
 */
notes: Array<string>, 
/**
 * Alerts that fired or resolved with this sample.
 */
alerts: Array<AlertTransition>, };
export type SamplerState = { samples: number, errors: number, last_error: Error | null, last_sampled_at: string | null, };
export type HistoryRetention = { 
/**
 * Raw samples (and raw per-query deltas).
 */
raw_hours: number, 
/**
 * Per-minute roll-ups.
 */
minute_days: number, 
/**
 * Per-hour roll-ups (and hourly per-query sums).
 */
hour_days: number, 
/**
 * Slow-query events.
 */
event_days: number, 
/**
 * Maintenance action runs (`maintenance_runs`); MAINTENANCE_HISTORY_DAYS.
 */
maintenance_days: number, };
export type CompactReport = { project: string, minute_rows_written: number, hour_rows_written: number, raw_rows_deleted: number, minute_rows_deleted: number, hour_rows_deleted: number, statement_rows_deleted: number, events_deleted: number, 
/**
 * Maintenance action runs older than their retention.
 */
maintenance_runs_deleted: number, };
export type Metric = "tps" | "commits_per_s" | "rollbacks_per_s" | "connections" | "max_connections" | "cache_hit_ratio" | "tuples_read_per_s" | "tuples_written_per_s" | "temp_files_per_s" | "temp_bytes_per_s" | "deadlocks_per_s" | "checkpoints_timed_per_s" | "checkpoints_requested_per_s" | "wal_bytes_per_s" | "replication_lag_seconds" | "replication_lag_bytes" | "slot_retained_bytes" | "locks_waiting" | "database_size_bytes" | "statement_mean_ms" | "statement_calls_per_s" | "up" | "probe_latency_ms";
export type HistoryRange = { "kind": "last15m" } | { "kind": "last1h" } | { "kind": "last24h" } | { "kind": "last7d" } | { "kind": "last30d" } | { "kind": "between", from: number, to: number, };
export type Resolution = "raw" | "minute" | "hour";
export type SeriesPoint = { 
/**
 * Bucket start (the sample time at raw resolution), UTC ms.
 */
t: number, value: number, min: number, max: number, };
export type Series = { metric: Metric, 
/**
 * Standby, slot, database or connection state; empty for server-wide metrics.
 */
label: string, title: string, unit: string, points: Array<SeriesPoint>, };
export type HistorySeries = { project: string, from: number, to: number, resolution: Resolution, series: Array<Series>, };
export type QuerySort = "total" | "mean" | "calls" | "rows" | "read" | "temp";
export type TopQuery = { queryid: string, query: string, calls: number, total_ms: number, 
/**
 * total_ms / calls over the range: a mean, not a percentile.
 */
mean_ms: number, rows: number, shared_blks_read: number, temp_blks_written: number, 
/**
 * Share of all statement time in the range (0..1).
 */
share_of_total: number, };
export type TopQueries = { project: string, from: number, to: number, sort: QuerySort, queries: Array<TopQuery>, 
/**
 * Whether the server currently has pg_stat_statements ready (None: could not ask).
 */
statements_available: boolean | null, 
/**
 * How to enable pg_stat_statements, when it is missing.
 */
enable_instructions: string | null, };
export type QueryPoint = { t: number, calls: number, calls_per_s: number, total_ms: number, 
/**
 * Mean time per call over the bucket (not a percentile).
 */
mean_ms: number, rows: number, };
export type QuerySeries = { queryid: string, query: string, resolution: Resolution, points: Array<QueryPoint>, };
export type HistoryChart = { 
/**
 * Stable name for the UI: "tps", "connections", "cache_hit_ratio", ...
 */
id: string, title: string, 
/**
 * What the reader must know to read it right (e.g. a mean is not a percentile).
 */
note: string | null, 
/**
 * Points drawn over all its lines; 0 when the range holds no data for it.
 */
points: number, svg: string, };
export type HistoryCharts = { project: string, from: number, to: number, resolution: Resolution, 
/**
 * Points over all charts; 0 when there is no history for the range yet.
 */
points: number, charts: Array<HistoryChart>, };
export type QueryCharts = { series: QuerySeries, 
/**
 * Calls per second over the range.
 */
calls_svg: string, 
/**
 * Mean time per call over each bucket (not a percentile).
 */
mean_svg: string, };
export type CircuitState = "closed" | "open" | "half_open";
export type PoolMetrics = { size: number, max_overflow: number, in_use: number, idle: number, waiters: number, acquisitions: number, served_from_idle: number, connections_opened: number, connections_closed: number, timeouts: number, connect_failures: number, 
/**
 * Total time callers spent waiting for a connection, in milliseconds.
 */
wait_ms_total: number, wait_ms_max: number, circuit: CircuitState, circuit_opened_times: number, };
export type ScheduledJob = "full" | "verify" | "recovery_test";
export type ScheduleChange = { job: ScheduledJob, cron: string | null, };
export type ScheduleRun = { job: ScheduledJob, 
/**
 * The scheduled time it ran for (local time, RFC 3339).
 */
due_at: string, started_at: string, duration_ms: number, 
/**
 * `succeeded`, `failed` or `skipped`.
 */
outcome: string, message: string, };
export type JobSchedule = { job: ScheduledJob, 
/**
 * `None`: off.
 */
cron: string | null, 
/**
 * `default` (from the environment) or `project` (set for this project).
 */
source: string, 
/**
 * Next run in local time (RFC 3339), when on.
 */
next_run: string | null, last_run: ScheduleRun | null, };
export type ScheduleReport = { project: string, 
/**
 * The zone the expressions are read in: this computer's local time, e.g. `UTC+01:00`.
 */
time_zone: string, jobs: Array<JobSchedule>, };
export type DueRun = { project: string, job: ScheduledJob, due_at: string, 
/**
 * `succeeded`, `failed` or `skipped`.
 */
outcome: string, message: string, duration_ms: number, };
export type RunDueReport = { runs: Array<DueRun>, 
/**
 * Projects another `run-due` was working on (left to it).
 */
busy: Array<string>, 
/**
 * Projects whose schedules could not be read, with the reason.
 */
problems: Array<string>, };
