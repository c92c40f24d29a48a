import type { Error as AppError, ErrorCode } from "./bindings";

// Every code the core can send; a Record so the type checker fails when one is missing.
const CODES: Record<ErrorCode, true> = {
  invalid_connection: true,
  invalid_input: true,
  project_not_found: true,
  project_exists: true,
  auth_failed: true,
  permission_denied: true,
  connect_failed: true,
  circuit_open: true,
  pool_timeout: true,
  query_failed: true,
  keyring_unavailable: true,
  secret_missing: true,
  backup_corrupt: true,
  backup_not_found: true,
  wrong_key: true,
  tool_missing: true,
  tool_failed: true,
  confirmation_required: true,
  cancelled: true,
  busy: true,
  io: true,
  storage_failed: true,
  plan_changed: true,
  otlp_unreachable: true,
  otlp_rejected: true,
  internal: true,
};
const KNOWN_CODES: ReadonlySet<string> = new Set(Object.keys(CODES));

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && KNOWN_CODES.has(value);
}

/** Builds an application error value. */
export function appError(
  code: ErrorCode,
  message: string,
  sqlstate: string | null = null,
): AppError {
  return { code, message, sqlstate };
}

/**
 * Turns anything a rejected IPC call (or other code) may throw into the
 * `{ code, message, sqlstate }` shape used throughout the UI.
 */
export function toAppError(err: unknown): AppError {
  if (typeof err === "object" && err !== null) {
    const rec = err as Record<string, unknown>;
    if (typeof rec.code === "string" && typeof rec.message === "string") {
      return {
        code: isErrorCode(rec.code) ? rec.code : "internal",
        message: rec.message,
        sqlstate: typeof rec.sqlstate === "string" ? rec.sqlstate : null,
      };
    }
    if (err instanceof globalThis.Error) {
      return appError("internal", err.message || String(err));
    }
  }
  if (typeof err === "string") {
    return appError("internal", err);
  }
  return appError("internal", String(err));
}

/** Single-line rendering: `code: message (SQLSTATE xxxxx)`. */
export function describeError(err: AppError): string {
  const state = err.sqlstate ? ` (SQLSTATE ${err.sqlstate})` : "";
  return `${err.code}: ${err.message}${state}`;
}
