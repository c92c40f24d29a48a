import type { Error as AppError, ErrorCode } from "./bindings";

const KNOWN_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "invalid_connection",
  "invalid_input",
  "project_not_found",
  "project_exists",
  "auth_failed",
  "permission_denied",
  "connect_failed",
  "circuit_open",
  "pool_timeout",
  "query_failed",
  "keyring_unavailable",
  "secret_missing",
  "backup_corrupt",
  "backup_not_found",
  "wrong_key",
  "tool_missing",
  "tool_failed",
  "confirmation_required",
  "cancelled",
  "io",
  "internal",
]);

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
