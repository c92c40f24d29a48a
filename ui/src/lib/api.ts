// Typed wrappers around the desktop shell's IPC commands.
// This is the only module that calls `invoke` or `listen`.
import { invoke, isTauri } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type {
  AlertConfig,
  AlertRule,
  AlertsReport,
  AvailabilityReport,
  ActivityFilter,
  ActivityReport,
  AppInfo,
  ApplyReport,
  BackupChoices,
  BackupDefaults,
  BackupSummary,
  BlockingTree,
  JobRun,
  S3Settings,
  StorageInfo,
  StorageSettings,
  ConnectionTest,
  DashboardSnapshot,
  ExplainReport,
  HardwareProfile,
  HealthReport,
  IndexReport,
  MaintenanceHistory,
  MaintenancePlan,
  MaintenanceProgress,
  MaintenanceSettings,
  MaintenanceStatus,
  MaintenanceTrends,
  OtlpInfo,
  RunReport,
  JobProgress,
  ProfileInput,
  ProjectInput,
  ProjectSummary,
  RecoveryReport,
  RestoreReport,
  RestoreTarget,
  ScheduleChange,
  ScheduleReport,
  SettingChange,
  SignalKind,
  SignalOutcome,
  TuneReport,
  VerifyReport,
  VerifyTier,
  HistoryCharts,
  HistoryRange,
  PoolMetrics,
  QueryCharts,
  QueryEvent,
  QuerySort,
  SamplerState,
  TopQueries,
} from "./bindings";
import { appError, toAppError } from "./errors";

/** Name of the event the shell emits while a backup or restore runs. */
export const JOB_PROGRESS_EVENT = "job-progress";

/** Jobs the shell can stop while they run. */
export type CancellableJob = "backup" | "restore" | "maintenance";

/** Ask the project's running job of `kind` to stop; false when none runs. */
export function jobCancel(name: string, kind: CancellableJob): Promise<boolean> {
  return call<boolean>("job_cancel", { name, kind });
}

/** Name of the event the shell emits while a maintenance action runs. */
export const MAINTENANCE_PROGRESS_EVENT = "maintenance-progress";

const NO_SHELL_MESSAGE =
  "The pgsteward desktop shell is not available (running in a plain browser).";

/** True inside the desktop shell (Tauri 2 injects its IPC internals into the page). */
export function hasShell(): boolean {
  return isTauri() || (typeof window !== "undefined" && "__TAURI_INTERNALS__" in window);
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  if (!hasShell()) {
    throw appError("internal", NO_SHELL_MESSAGE);
  }
  try {
    return await invoke<T>(command, args);
  } catch (err) {
    throw toAppError(err);
  }
}

export function appInfo(): Promise<AppInfo> {
  return call<AppInfo>("app_info");
}

export function projectList(): Promise<ProjectSummary[]> {
  return call<ProjectSummary[]>("project_list");
}

export function projectCreate(input: ProjectInput): Promise<ProjectSummary> {
  return call<ProjectSummary>("project_create", { input });
}

/** `input.password === null` keeps the stored password. */
export function projectUpdate(name: string, input: ProjectInput): Promise<ProjectSummary> {
  return call<ProjectSummary>("project_update", { name, input });
}

export function projectRemove(name: string, deleteBackups: boolean): Promise<null> {
  return call<null>("project_remove", { name, deleteBackups });
}

export function projectTest(name: string): Promise<ConnectionTest> {
  return call<ConnectionTest>("project_test", { name });
}

export function projectTestInput(input: ProjectInput): Promise<ConnectionTest> {
  return call<ConnectionTest>("project_test_input", { input });
}

export function dashboardSample(name: string): Promise<DashboardSnapshot> {
  return call<DashboardSnapshot>("dashboard_sample", { name });
}

export function backupList(name: string): Promise<BackupSummary[]> {
  return call<BackupSummary[]>("backup_list", { name });
}

/** Back up now; `null` fields of `choices` keep the environment's defaults. */
export function backupCreate(
  name: string,
  choices: BackupChoices | null = null,
): Promise<BackupSummary> {
  return call<BackupSummary>("backup_create", { name, choices });
}

export function backupDefaults(): Promise<BackupDefaults> {
  return call<BackupDefaults>("backup_defaults");
}

/** The latest backup, restore, verify and recovery-test runs, newest first, without logs. */
export function jobRuns(name: string): Promise<JobRun[]> {
  return call<JobRun[]>("job_runs", { name });
}

/** One finished job with its log, by job id or by the id of the backup it made. */
export function jobRun(name: string, id: string): Promise<JobRun> {
  return call<JobRun>("job_run", { name, id });
}

export function storageInfo(name: string): Promise<StorageInfo> {
  return call<StorageInfo>("storage_info", { name });
}

/** `secret` goes to the keyring (null keeps the stored one); it is never read back. */
export function storageSet(
  name: string,
  settings: StorageSettings,
  secret: string | null,
  check: boolean,
): Promise<StorageInfo> {
  return call<StorageInfo>("storage_set", { name, settings, secret, check });
}

/** `target` null removes the copy target. */
export function copyTargetSet(
  name: string,
  target: S3Settings | null,
  secret: string | null,
  check: boolean,
): Promise<StorageInfo> {
  return call<StorageInfo>("copy_target_set", { name, target, secret, check });
}

export function backupRestore(
  name: string,
  backupId: string,
  target: RestoreTarget,
): Promise<RestoreReport> {
  return call<RestoreReport>("backup_restore", { name, backupId, target });
}

export function activityList(name: string, filter: ActivityFilter): Promise<ActivityReport> {
  return call<ActivityReport>("activity_list", { name, filter });
}

export function blockingTree(name: string): Promise<BlockingTree> {
  return call<BlockingTree>("blocking_tree", { name });
}

/** Cancels the running query or ends the session `pid`. Callers confirm with the user first. */
export function backendSignal(name: string, pid: number, kind: SignalKind): Promise<SignalOutcome> {
  return call<SignalOutcome>(kind === "cancel" ? "backend_cancel" : "backend_terminate", {
    name,
    pid,
  });
}

/** Runs EXPLAIN (with ANALYZE inside a transaction that is always rolled back). */
export function explainRun(name: string, sql: string, analyze: boolean): Promise<ExplainReport> {
  return call<ExplainReport>("explain_run", { name, sql, analyze });
}

export function healthCheck(name: string): Promise<HealthReport> {
  return call<HealthReport>("health_check", { name });
}

/** Verifies one backup: quick (sizes), sampled (10 % of segments authenticated) or full. */
export function backupVerify(
  name: string,
  backupId: string,
  tier: VerifyTier,
): Promise<VerifyReport[]> {
  return call<VerifyReport[]>("backup_verify", { name, backupId, tier });
}

/** The project's saved tuning profile; `null` when none was saved yet. */
export function tuneProfile(name: string): Promise<HardwareProfile | null> {
  return call<HardwareProfile | null>("tune_profile", { name });
}

/** Resolves the profile from `input`, the saved one and detection, saves it and returns it. */
export function tuneProfileSave(name: string, input: ProfileInput): Promise<HardwareProfile> {
  return call<HardwareProfile>("tune_profile_save", { name, input });
}

/** Recommendations for the project's server (also saves the profile, as `tuneProfileSave`). */
export function tuneRecommend(name: string, input: ProfileInput): Promise<TuneReport> {
  return call<TuneReport>("tune_recommend", { name, input });
}

/** Changes settings with ALTER SYSTEM and reloads. Callers confirm with the user first. */
export function tuneApply(name: string, changes: SettingChange[]): Promise<ApplyReport> {
  return call<ApplyReport>("tune_apply", { name, changes });
}

/** Restores the values the latest apply replaced. Callers confirm with the user first. */
export function tuneRollback(name: string): Promise<ApplyReport> {
  return call<ApplyReport>("tune_rollback", { name });
}

/** Restores a backup into a throwaway server and compares it with what was backed up. */
export function backupTestRecovery(name: string, backupId: string): Promise<RecoveryReport> {
  return call<RecoveryReport>("backup_test_recovery", { name, backupId });
}

/** The recovery kit's text: the backup key sealed under `passphrase`. */
export function keyExportKit(name: string, passphrase: string): Promise<string> {
  return call<string>("key_export_kit", { name, passphrase });
}

/** Whether a recovery kit was exported for the project's current backup key. */
export function keyKitExported(name: string): Promise<boolean> {
  return call<boolean>("key_kit_exported", { name });
}

export function sandboxStart(): Promise<ProjectSummary> {
  return call<ProjectSummary>("sandbox_start");
}

/** Starts the project's background history sampler in the shell (once; later calls report it). */
export function historySamplerStart(name: string): Promise<SamplerState> {
  return call<SamplerState>("history_sampler_start", { name });
}

/** Tells the shell the window was hidden or shown, so its samplers slow down or speed up. */
export function historyVisibility(hidden: boolean): Promise<null> {
  return call<null>("history_visibility", { hidden });
}

export function historyCharts(name: string, range: HistoryRange): Promise<HistoryCharts> {
  return call<HistoryCharts>("history_charts", { name, range });
}

export function historyTopQueries(
  name: string,
  range: HistoryRange,
  sort: QuerySort,
): Promise<TopQueries> {
  return call<TopQueries>("history_top_queries", { name, range, sort });
}

export function historyQueryCharts(
  name: string,
  queryid: string,
  range: HistoryRange,
): Promise<QueryCharts> {
  return call<QueryCharts>("history_query_charts", { name, queryid, range });
}

export function historySlowEvents(name: string, range: HistoryRange): Promise<QueryEvent[]> {
  return call<QueryEvent[]>("history_slow_events", { name, range });
}

/** The app's own connection pool for the project (not the server's). */
export function poolMetrics(name: string): Promise<PoolMetrics> {
  return call<PoolMetrics>("pool_metrics", { name });
}

export function alertsReport(name: string): Promise<AlertsReport> {
  return call<AlertsReport>("alerts_report", { name });
}

/** Where the project's metrics go over OTLP, and how the exports went. */
export function otlpInfo(name: string): Promise<OtlpInfo> {
  return call<OtlpInfo>("otlp_info", { name });
}

/** Sets the OTLP endpoint (`null` stops exporting); a header set from the CLI is kept. */
export function otlpConfigure(name: string, endpoint: string | null): Promise<OtlpInfo> {
  return call<OtlpInfo>("otlp_configure", { name, endpoint });
}

/** Changes one rule; `null` leaves that part as it is. */
export function alertsConfigure(
  name: string,
  rule: AlertRule,
  threshold: number | null,
  enabled: boolean | null,
): Promise<AlertConfig> {
  return call<AlertConfig>("alerts_configure", { name, rule, threshold, enabled });
}

export function availabilityReport(name: string): Promise<AvailabilityReport> {
  return call<AvailabilityReport>("availability_report", { name });
}

/**
 * Subscribes to job progress events. Resolves to an unsubscribe function.
 * Outside the desktop shell this is a no-op.
 */
export async function onJobProgress(handler: (progress: JobProgress) => void): Promise<() => void> {
  if (!hasShell()) {
    return () => {};
  }
  try {
    return await listen<JobProgress>(JOB_PROGRESS_EVENT, (event) => handler(event.payload));
  } catch (err) {
    throw toAppError(err);
  }
}

/** Builds the maintenance plan; `measure` measures bloat exactly (pgstattuple) where it decides. */
export function maintainPlan(name: string, measure: boolean): Promise<MaintenancePlan> {
  return call<MaintenancePlan>("maintain_plan", { name, measure });
}

/**
 * Runs the actions `ids` of the plan last shown; `sql` holds the statements the user confirmed,
 * one per id, in the same order.
 */
/** Run the confirmed actions now, or (`inWindow`) once the maintenance window opens. */
export function maintainRun(
  name: string,
  ids: number[],
  sql: string[],
  inWindow: boolean,
): Promise<RunReport> {
  return call<RunReport>("maintain_run", { name, ids, sql, inWindow });
}

export function maintainHistory(name: string, limit: number): Promise<MaintenanceHistory> {
  return call<MaintenanceHistory>("maintain_history", { name, limit });
}

/** Dead tuples, size and bloat over a range: the database, or one table. */
export function maintainTrends(
  name: string,
  range: HistoryRange,
  table: { schema: string; name: string } | null,
): Promise<MaintenanceTrends> {
  return call<MaintenanceTrends>("maintain_trends", {
    name,
    range,
    schema: table?.schema ?? null,
    table: table?.name ?? null,
  });
}

/** The project's own maintenance settings and the configuration in force. */
export function maintainSettings(name: string): Promise<MaintenanceSettings> {
  return call<MaintenanceSettings>("maintain_settings", { name });
}

/** Set (text) or drop (null) project settings; nothing is saved unless all are valid. */
export function maintainSettingsSet(
  name: string,
  changes: Record<string, string | null>,
): Promise<MaintenanceSettings> {
  return call<MaintenanceSettings>("maintain_settings_set", { name, changes });
}

export function maintainStatus(name: string): Promise<MaintenanceStatus> {
  return call<MaintenanceStatus>("maintain_status", { name });
}

export function indexReport(name: string): Promise<IndexReport> {
  return call<IndexReport>("index_report", { name });
}

/**
 * Subscribes to maintenance progress events. Resolves to an unsubscribe function.
 * Outside the desktop shell this is a no-op.
 */
export async function onMaintenanceProgress(
  handler: (progress: MaintenanceProgress) => void,
): Promise<() => void> {
  if (!hasShell()) {
    return () => {};
  }
  try {
    return await listen<MaintenanceProgress>(MAINTENANCE_PROGRESS_EVENT, (event) =>
      handler(event.payload),
    );
  } catch (err) {
    throw toAppError(err);
  }
}

/** A project's backup schedules (full, verify, recovery test), next and last runs. */
export function scheduleShow(name: string): Promise<ScheduleReport> {
  return call<ScheduleReport>("schedule_show", { name });
}

/** Set jobs' cron expressions (null: off); nothing is saved unless every one is valid. */
export function scheduleSet(name: string, changes: ScheduleChange[]): Promise<ScheduleReport> {
  return call<ScheduleReport>("schedule_set", { name, changes });
}

/** Name of the event the shell emits after each scheduled run. */
export const SCHEDULE_EVENT = "schedule-run";

/** Call `handler` after each scheduled run; resolves to the function that stops listening. */
export async function onScheduleRun(handler: () => void): Promise<() => void> {
  if (!hasShell()) return () => {};
  return await listen(SCHEDULE_EVENT, () => handler());
}
