// Pure formatting helpers (no DOM, no Svelte) so they can be unit tested.

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Human readable byte count with binary units: `0 B`, `1.5 KiB`, `120 MiB`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "—";
  const sign = bytes < 0 ? "-" : "";
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${sign}${Math.round(value)} B`;
  // Round first so 1023.96 KiB does not print as "1024.0 KiB".
  let text = value < 100 ? value.toFixed(1) : value.toFixed(0);
  if (Number(text) >= 1024 && unit < BYTE_UNITS.length - 1) {
    unit += 1;
    text = (Number(text) / 1024).toFixed(1);
  }
  return `${sign}${text} ${BYTE_UNITS[unit]}`;
}

/** Transfer rate: `12.3 MiB/s`. */
export function formatRate(bytesPerSec: number | null | undefined): string {
  if (bytesPerSec === null || bytesPerSec === undefined || !Number.isFinite(bytesPerSec)) {
    return "—";
  }
  return `${formatBytes(Math.max(0, bytesPerSec))}/s`;
}

/** Uptime style duration from seconds, two most significant units: `3d 4h`, `5m 7s`. */
export function formatUptime(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return "—";
  }
  let rest = Math.floor(seconds);
  const days = Math.floor(rest / 86400);
  rest -= days * 86400;
  const hours = Math.floor(rest / 3600);
  rest -= hours * 3600;
  const minutes = Math.floor(rest / 60);
  const secs = rest - minutes * 60;
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${minutes}m`;
  if (minutes > 0) return `${minutes}m ${secs}s`;
  return `${secs}s`;
}

/** Duration from milliseconds: `850 ms`, `12.3 s`, `2m 05s`, `1h 02m`. */
export function formatDurationMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) {
    const secs = ms / 1000;
    return secs < 10 ? `${secs.toFixed(1)} s` : `${Math.floor(secs)} s`;
  }
  const totalSecs = Math.floor(ms / 1000);
  const hours = Math.floor(totalSecs / 3600);
  const minutes = Math.floor((totalSecs % 3600) / 60);
  const secs = totalSecs % 60;
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  return `${minutes}m ${String(secs).padStart(2, "0")}s`;
}

/** Transactions per second with one decimal. */
export function formatTps(tps: number | null | undefined): string {
  if (tps === null || tps === undefined || !Number.isFinite(tps)) return "—";
  return tps.toFixed(1);
}

/**
 * Normalises a ratio to the 0..1 range. Values above 1 are taken to be
 * percentages already (0..100).
 */
export function normalizeRatio(ratio: number | null | undefined): number | null {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return null;
  const r = ratio > 1 ? ratio / 100 : ratio;
  return Math.min(1, Math.max(0, r));
}

/** Percentage with one decimal from a 0..1 ratio: `99.2 %`. */
export function formatPercent(ratio: number | null | undefined): string {
  const r = normalizeRatio(ratio);
  if (r === null) return "—";
  return `${(r * 100).toFixed(1)} %`;
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

function parseDate(value: string | Date): Date | null {
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Local date and time: `2024-05-01 13:45:12`. Unparseable input is returned as is. */
export function formatDateTime(value: string | Date): string {
  const d = parseDate(value);
  if (!d) return String(value);
  return (
    `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
  );
}

/** Local time of day: `13:45:12`. */
export function formatTime(value: string | Date): string {
  const d = parseDate(value);
  if (!d) return String(value);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Default database name for "restore into a new database": `<db>_restored_<yyyymmdd_hhmm>`. */
export function defaultRestoreName(database: string, now: Date = new Date()): string {
  const stamp =
    `${now.getFullYear()}${pad2(now.getMonth() + 1)}${pad2(now.getDate())}_` +
    `${pad2(now.getHours())}${pad2(now.getMinutes())}`;
  return `${database}_restored_${stamp}`;
}

/** Epoch milliseconds for sorting; unparseable values sort last (oldest). */
export function timestampOf(value: string): number {
  const t = Date.parse(value);
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

/** Round-trip latency: `0.8 ms`, `12 ms`. */
export function formatLatency(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** How much smaller the stored backup is than the dump: `4.2×`; `—` when unknown. */
export function compressionRatio(b: { plaintext_bytes: number; stored_bytes: number }): string {
  if (!(b.plaintext_bytes > 0) || !(b.stored_bytes > 0)) return "—";
  const r = b.plaintext_bytes / b.stored_bytes;
  return `${r >= 10 ? Math.round(r) : r.toFixed(1)}×`;
}
