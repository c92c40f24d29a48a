// Pure helpers for the Alerts page: how a rule and its threshold read for a person.
import type { AlertRule, RuleConfig } from "./bindings";

const TITLES: Record<AlertRule, string> = {
  server_down: "Server unreachable",
  slow_queries: "Slow queries per hour",
  statement_latency: "Mean statement time",
  pool_utilisation: "Pool utilisation",
  cache_hit_ratio: "Cache hit ratio",
  backup_failures: "Backups failed in a row",
  maintenance_failures: "Maintenance failed",
};

export function ruleTitle(rule: AlertRule): string {
  return TITLES[rule];
}

/** Ratios are shown and entered as percentages; other units as they are. */
export function isRatio(r: RuleConfig): boolean {
  return r.unit === "ratio";
}

export function thresholdText(r: RuleConfig, value: number = r.threshold): string {
  if (isRatio(r)) return `${+(value * 100).toFixed(1)} %`;
  if (r.unit === "up") return "probe fails";
  return `${+value.toFixed(2)} ${r.unit}`;
}

/** "above 100 ms, after 2 samples; clears at 80 ms". */
export function ruleSummary(r: RuleConfig): string {
  if (r.rule === "server_down") {
    return `fires after ${r.for_samples} failed probes in a row; clears after as many good ones`;
  }
  const dir = r.direction === "above" ? "above" : "below";
  const after = r.for_samples > 1 ? `, after ${r.for_samples} samples` : "";
  return `${dir} ${thresholdText(r)}${after}; clears at ${thresholdText(r, r.clear)}`;
}

/** Parse what the user typed into the unit the core stores; null when it is not a number. */
export function parseThreshold(r: RuleConfig, text: string): number | null {
  const n = Number(text.replace("%", "").trim());
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) return null;
  return isRatio(r) ? n / 100 : n;
}
