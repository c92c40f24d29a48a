// Pure helpers for the monitoring history views (no DOM, no Svelte) so they can be unit tested.
import type { HistoryRange, PoolMetrics, QueryEvent, QuerySort, TopQuery } from "./bindings";

/** A range of the dashboard; "live" is the in-memory view sampled while the page is visible. */
export type RangeId = "live" | "15m" | "1h" | "24h" | "7d" | "30d";
export type HistoryRangeId = Exclude<RangeId, "live">;

export const RANGES: { id: RangeId; label: string }[] = [
  { id: "live", label: "Live" },
  { id: "15m", label: "15 min" },
  { id: "1h", label: "1 h" },
  { id: "24h", label: "24 h" },
  { id: "7d", label: "7 d" },
  { id: "30d", label: "30 d" },
];

export const HISTORY_RANGES = RANGES.filter(
  (r): r is { id: HistoryRangeId; label: string } => r.id !== "live",
);

const KINDS: Record<HistoryRangeId, HistoryRange> = {
  "15m": { kind: "last15m" },
  "1h": { kind: "last1h" },
  "24h": { kind: "last24h" },
  "7d": { kind: "last7d" },
  "30d": { kind: "last30d" },
};

export function toHistoryRange(id: HistoryRangeId): HistoryRange {
  return KINDS[id];
}

const SPOKEN: Record<HistoryRangeId, string> = {
  "15m": "the last 15 minutes",
  "1h": "the last hour",
  "24h": "the last 24 hours",
  "7d": "the last 7 days",
  "30d": "the last 30 days",
};

export function describeRange(id: HistoryRangeId): string {
  return SPOKEN[id];
}

/** How often a history view re-reads the store while visible: short ranges move faster. */
export function refreshIntervalMs(id: HistoryRangeId): number {
  switch (id) {
    case "15m":
      return 10_000;
    case "1h":
      return 20_000;
    case "24h":
      return 60_000;
    default:
      return 300_000;
  }
}

export const SORTS: { id: QuerySort; label: string }[] = [
  { id: "total", label: "Total time" },
  { id: "mean", label: "Mean time" },
  { id: "calls", label: "Calls" },
  { id: "rows", label: "Rows" },
  { id: "read", label: "Shared blocks read" },
  { id: "temp", label: "Temp blocks written" },
];

/** The figure a sort ranks by, to highlight its column. */
export function sortValue(q: TopQuery, sort: QuerySort): number {
  switch (sort) {
    case "total":
      return q.total_ms;
    case "mean":
      return q.mean_ms;
    case "calls":
      return q.calls;
    case "rows":
      return q.rows;
    case "read":
      return q.shared_blks_read;
    case "temp":
      return q.temp_blks_written;
  }
}

/** One line of a statement for a table cell: whitespace collapsed, cut at `max` characters. */
export function oneLine(sql: string, max = 140): string {
  const flat = sql.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** True when a normalised statement still has `$n` placeholders to fill in before EXPLAIN. */
export function hasPlaceholders(sql: string): boolean {
  return /\$\d+/.test(sql);
}

/** Whole counts as integers, small fractional ones with up to two decimals. */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  if (Math.abs(n - Math.round(n)) < 1e-9 || Math.abs(n) >= 100) {
    return Math.round(n).toLocaleString("en-US");
  }
  return n.toFixed(2);
}

export function eventKindLabel(e: QueryEvent): string {
  switch (e.kind) {
    case "slow_statement":
      return "Slow statement (interval mean)";
    case "long_running":
      return "Long-running query";
    default:
      return e.kind;
  }
}

/** Share of acquisitions served by an idle connection (0..1), null before the first one. */
export function idleShare(m: PoolMetrics): number | null {
  return m.acquisitions > 0 ? m.served_from_idle / m.acquisitions : null;
}

/** Mean wait for a connection over all acquisitions, in ms; null before the first one. */
export function meanWaitMs(m: PoolMetrics): number | null {
  return m.acquisitions > 0 ? m.wait_ms_total / m.acquisitions : null;
}

export function circuitLabel(m: PoolMetrics): string {
  switch (m.circuit) {
    case "closed":
      return "Closed (connecting normally)";
    case "open":
      return "Open (failing fast after repeated failures)";
    case "half_open":
      return "Half-open (trying one connection)";
  }
}
