// Figures of a job's progress bar: the share done and the time left, when the job knows its
// total (a backup's dump phase only estimates it from the table sizes).
import type { JobProgress } from "./bindings";

export interface ProgressFigures {
  /** 0..100, or null when the total is unknown (the bar is then indeterminate). */
  percent: number | null;
  /** "ETA m:ss", or null when there is no total or no rate yet. */
  eta: string | null;
  /** The total is an estimate. */
  estimate: boolean;
}

/** `m:ss` below an hour, `h:mm:ss` above; never negative. */
export function formatEta(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** Time left in ms at `rate` bytes/s, or null without a total or a rate. */
export function etaMs(bytes: number, total: number | null, rate: number): number | null {
  if (total === null || !(rate > 0) || !Number.isFinite(rate) || bytes <= 0) return null;
  return (Math.max(0, total - bytes) / rate) * 1000;
}

export function progressFigures(p: JobProgress | null, running: boolean): ProgressFigures {
  const total = p?.total_bytes ?? null;
  if (!p || !running || total === null || total <= 0) {
    return { percent: null, eta: null, estimate: false };
  }
  // An estimate can be passed; the bar then waits at 99 % until the phase ends.
  const percent = Math.min(p.total_is_estimate ? 99 : 100, (p.bytes / total) * 100);
  const left = p.eta_ms ?? etaMs(p.bytes, total, p.rate_bytes_per_sec);
  return {
    percent: Math.max(0, percent),
    eta: left === null ? null : `ETA ${formatEta(left)}`,
    estimate: p.total_is_estimate,
  };
}
