// The maintenance page's table list: health badges from the plan's figures and thresholds,
// and sorting. Pure functions, so the page stays a view and these are unit-tested.
import type { MaintenanceConfig, MaintenancePlan, TableEntry } from "./bindings";

export type TableSort = "name" | "size" | "dead" | "bloat" | "xid_age" | "changed";

export type BadgeTone = "bad" | "warn" | "info";

export interface Badge {
  label: string;
  tone: BadgeTone;
  /** Why the badge is there, shown as its tooltip. */
  why: string;
}

/** The figure a DBA acts on: measured when measured, otherwise the estimate. */
export function bloatOf(t: TableEntry) {
  return t.measured ?? t.estimate;
}

export function totalBytes(t: TableEntry): number {
  return t.stats.heap_bytes + t.stats.toast_bytes + t.stats.index_bytes;
}

/** Dead tuples as a share of all tuples, in percent (0 for an empty table). */
export function deadPercent(t: TableEntry): number {
  const all = t.stats.live_tuples + t.stats.dead_tuples;
  return all > 0 ? (100 * t.stats.dead_tuples) / all : 0;
}

/** Rows changed since the last analyze as a share of the live rows, in percent. */
export function changedPercent(t: TableEntry): number {
  const base = Math.max(t.stats.live_tuples, t.stats.reltuples, 1);
  return (100 * t.stats.mod_since_analyze) / base;
}

/** Badges for one table, worst first, judged with the plan's own thresholds. */
export function badges(
  t: TableEntry,
  plan: Pick<MaintenancePlan, "config" | "autovacuum_freeze_max_age">,
): Badge[] {
  const c = plan.config;
  const out: Badge[] = [];
  const freezeAt = plan.autovacuum_freeze_max_age * c.freeze_age_fraction;
  if (plan.autovacuum_freeze_max_age > 0 && t.stats.xid_age > freezeAt) {
    out.push({
      label: "freeze",
      tone: "bad",
      why: `Transaction id age ${t.stats.xid_age.toLocaleString()} is past ${Math.round(
        c.freeze_age_fraction * 100,
      )} % of autovacuum_freeze_max_age.`,
    });
  }
  const dead = deadPercent(t);
  if (dead >= c.vacuum_threshold_percent) {
    out.push({
      label: "vacuum",
      tone: t.below_minimum ? "info" : "warn",
      why: `${dead.toFixed(1)} % dead tuples (threshold ${c.vacuum_threshold_percent} %)${
        t.below_minimum ? "; below the minimum size, left alone" : ""
      }.`,
    });
  }
  const changed = changedPercent(t);
  if (changed >= c.analyze_threshold_percent) {
    out.push({
      label: "analyze",
      tone: t.below_minimum ? "info" : "warn",
      why: `${changed.toFixed(1)} % of rows changed since the last analyze (threshold ${c.analyze_threshold_percent} %).`,
    });
  }
  const b = bloatOf(t);
  if (b.caveats.length > 0 && !t.measured) {
    out.push({
      label: "estimate unreliable",
      tone: "info",
      why: `Bloat estimate not acted on: ${b.caveats.map((x) => x.replace(/_/g, " ")).join(", ")}.`,
    });
  }
  if (t.stats.last_analyze === null && t.stats.last_autoanalyze === null) {
    out.push({ label: "never analyzed", tone: "warn", why: "No ANALYZE has run on this table." });
  }
  return out;
}

function key(t: TableEntry, by: TableSort): number | string {
  switch (by) {
    case "name":
      return `${t.stats.schema}.${t.stats.name}`;
    case "size":
      return totalBytes(t);
    case "dead":
      return deadPercent(t);
    case "bloat":
      return bloatOf(t).bloat_bytes;
    case "xid_age":
      return t.stats.xid_age;
    case "changed":
      return changedPercent(t);
  }
}

/** A sorted copy; names ascend by default, figures descend (largest first). */
export function sortTables(
  tables: TableEntry[],
  by: TableSort,
  descending?: boolean,
): TableEntry[] {
  const desc = descending ?? by !== "name";
  const sign = desc ? -1 : 1;
  return [...tables].sort((a, b) => {
    const ka = key(a, by);
    const kb = key(b, by);
    if (typeof ka === "string" && typeof kb === "string") return sign * ka.localeCompare(kb);
    return sign * ((ka as number) - (kb as number));
  });
}

/** Tables whose schema-qualified name contains `text`, case-insensitively. */
export function filterTables(tables: TableEntry[], text: string): TableEntry[] {
  const q = text.trim().toLowerCase();
  if (!q) return tables;
  return tables.filter((t) => `${t.stats.schema}.${t.stats.name}`.toLowerCase().includes(q));
}

/** The rows of a virtual list to render: [first, last) for a scroll offset, plus an overscan. */
export function visibleRange(
  scrollTop: number,
  viewport: number,
  rowHeight: number,
  count: number,
  overscan = 8,
): [number, number] {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + viewport) / rowHeight) + overscan);
  return [first, Math.max(first, last)];
}

/** A project setting the form edits: its name, a label, and the value in force as text. */
export interface SettingField {
  key: string;
  label: string;
  hint: string;
  inForce: (c: MaintenanceConfig) => string;
}

const hhmm = (t: string) => t.slice(0, 5);
const orOff = (v: number | null, unit = "") => (v === null ? "off" : `${v}${unit}`);

export const SETTING_FIELDS: SettingField[] = [
  {
    key: "window_start",
    label: "Window start",
    hint: "HH:MM",
    inForce: (c) => hhmm(c.window.start),
  },
  { key: "window_end", label: "Window end", hint: "HH:MM", inForce: (c) => hhmm(c.window.end) },
  {
    key: "time_zone",
    label: "Time zone",
    hint: "e.g. Europe/Paris",
    inForce: (c) => c.time_zone ?? "local time",
  },
  {
    key: "vacuum_threshold_percent",
    label: "VACUUM at dead tuples (%)",
    hint: "1–100",
    inForce: (c) => String(c.vacuum_threshold_percent),
  },
  {
    key: "analyze_threshold_percent",
    label: "ANALYZE at changed rows (%)",
    hint: "1–100",
    inForce: (c) => String(c.analyze_threshold_percent),
  },
  {
    key: "reindex_threshold_percent",
    label: "REINDEX at index bloat (%)",
    hint: "1–100",
    inForce: (c) => String(c.reindex_threshold_percent),
  },
  {
    key: "max_lock_waiters",
    label: "Guard: sessions waiting on our locks",
    hint: "a number",
    inForce: (c) => String(c.guard.max_waiting_sessions),
  },
  {
    key: "lock_wait_seconds",
    label: "Guard: after waiting (s)",
    hint: "seconds",
    inForce: (c) => String(c.guard.lock_wait_grace_seconds),
  },
  {
    key: "max_active_sessions",
    label: "Guard: active sessions",
    hint: "a number or off",
    inForce: (c) => orOff(c.guard.max_active_sessions),
  },
  {
    key: "max_statement_latency_ms",
    label: "Guard: statement latency (ms)",
    hint: "a number or off",
    inForce: (c) => orOff(c.guard.max_statement_latency_ms),
  },
  {
    key: "max_replication_lag",
    label: "Guard: replication lag",
    hint: "e.g. 512MB or off",
    inForce: (c) => orOff(c.guard.max_replication_lag_bytes, " B"),
  },
];

/** What the form changed against the project's overrides: text sets, null drops. */
export function settingChanges(
  overrides: Record<string, string | undefined>,
  form: Record<string, string>,
): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const f of SETTING_FIELDS) {
    const was = overrides[f.key] ?? "";
    const now = (form[f.key] ?? "").trim();
    if (now !== was) out[f.key] = now === "" ? null : now;
  }
  return out;
}
