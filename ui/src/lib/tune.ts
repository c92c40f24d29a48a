// Pure helpers for the Tuning page (no DOM, no Svelte) so they can be unit tested.
import type {
  ApplyReport,
  Confidence,
  DbSize,
  HardwareProfile,
  ProfileInput,
  Recommendation,
  SettingChange,
  StorageKind,
  TakesEffect,
  TuneBasis,
  TuneReport,
  Workload,
} from "./bindings";

/** What the hardware/workload form holds; text fields stay strings until submitted. */
export interface TuneForm {
  ram: string;
  cpus: string;
  storage: StorageKind;
  workload: Workload;
  connections: string;
  dbSize: DbSize;
}

export const STORAGE_OPTIONS: { id: StorageKind; label: string }[] = [
  { id: "ssd", label: "SSD" },
  { id: "nvme", label: "NVMe" },
  { id: "hdd", label: "HDD" },
  { id: "san", label: "SAN" },
];

export const WORKLOAD_OPTIONS: { id: Workload; label: string }[] = [
  { id: "web", label: "Web application" },
  { id: "oltp", label: "OLTP" },
  { id: "dw", label: "Data warehouse" },
  { id: "mixed", label: "Mixed" },
  { id: "desktop", label: "Desktop" },
];

export const DB_SIZE_OPTIONS: { id: DbSize; label: string }[] = [
  { id: "unknown", label: "Not known" },
  { id: "smaller_than_ram", label: "Fits in RAM" },
  { id: "larger_than_ram", label: "Larger than RAM" },
];

export const CONFIDENCE_LABEL: Record<Confidence, string> = {
  high: "high confidence",
  medium: "medium confidence",
  low: "low confidence",
};

export const BASIS_LABEL: Record<TuneBasis, string> = {
  hardware: "hardware",
  evidence: "statistics",
  both: "hardware and statistics",
};

export const EFFECT_LABEL: Record<TakesEffect, string> = {
  reload: "reload",
  restart: "restart",
  not_a_setting: "advice",
};

const KB_PER_MB = 1024;
const KB_PER_GB = 1024 * 1024;
const KB_PER_TB = 1024 * 1024 * 1024;

/**
 * A size in kB the way PostgreSQL writes it: the largest binary unit that divides it exactly
 * ("16GB", "512MB", "1000kB").
 */
export function formatKb(kb: number | null | undefined): string {
  if (kb === null || kb === undefined || !Number.isFinite(kb) || kb < 0) return "—";
  const n = Math.round(kb);
  if (n > 0 && n % KB_PER_TB === 0) return `${n / KB_PER_TB}TB`;
  if (n > 0 && n % KB_PER_GB === 0) return `${n / KB_PER_GB}GB`;
  if (n > 0 && n % KB_PER_MB === 0) return `${n / KB_PER_MB}MB`;
  return `${n}kB`;
}

/** An empty form: RAM and CPUs blank (detected when the server runs on this machine). */
export function emptyForm(): TuneForm {
  return {
    ram: "",
    cpus: "",
    storage: "ssd",
    workload: "web",
    connections: "",
    dbSize: "unknown",
  };
}

/** The form pre-filled from a saved (or just resolved) profile. */
export function formFromProfile(p: HardwareProfile | null): TuneForm {
  if (!p) return emptyForm();
  return {
    ram: formatKb(p.ram_kb),
    cpus: p.cpus === null ? "" : String(p.cpus),
    storage: p.storage,
    workload: p.workload,
    connections: p.connections === null ? "" : String(p.connections),
    dbSize: p.db_size,
  };
}

/** A whole positive number typed in a text field; `null` when blank. */
export function parseCount(text: string, what: string): number | null {
  const t = text.trim();
  if (t === "") return null;
  if (!/^\d+$/.test(t) || Number(t) < 1) {
    throw new RangeError(`${what} must be a whole number of at least 1 (got "${t}").`);
  }
  return Number(t);
}

/**
 * What the form sends to the core. Blank fields are left to the saved profile or detection;
 * the core checks every value again. Throws a RangeError naming a bad count.
 */
export function inputFromForm(f: TuneForm): ProfileInput {
  const ram = f.ram.trim();
  return {
    ram: ram === "" ? null : ram,
    cpus: parseCount(f.cpus, "CPUs"),
    storage: f.storage,
    workload: f.workload,
    connections: parseCount(f.connections, "Connections"),
    db_size: f.dbSize,
    os: null,
  };
}

/** A recommendation that can be applied: a real setting with a recommended value. */
export function isApplicable(r: Recommendation): boolean {
  return r.takes_effect !== "not_a_setting" && r.recommended !== null;
}

/** Ticked by default: the applicable recommendations that change the current value. */
export function defaultSelection(report: TuneReport): Record<string, boolean> {
  const sel: Record<string, boolean> = {};
  for (const g of report.groups) {
    for (const r of g.items) {
      if (isApplicable(r)) sel[r.name] = r.changes;
    }
  }
  return sel;
}

/** The chosen recommendations, in the report's order. */
export function selectedItems(
  report: TuneReport,
  selection: Record<string, boolean>,
): Recommendation[] {
  return report.groups.flatMap((g) => g.items).filter((r) => isApplicable(r) && selection[r.name]);
}

/** What `tune_apply` receives for the chosen recommendations. */
export function changesFor(items: Recommendation[]): SettingChange[] {
  return items.flatMap((r) =>
    r.recommended === null ? [] : [{ name: r.name, value: r.recommended }],
  );
}

/** "a", "a and b", "a, b and c". */
export function listNames(names: string[]): string {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/** One sentence saying which chosen settings wait for a restart. */
export function restartSummary(items: Recommendation[]): string {
  const restart = items.filter((r) => r.takes_effect === "restart").map((r) => r.name);
  if (restart.length === 0) return "All of them take effect on a configuration reload.";
  if (restart.length === items.length) {
    return restart.length === 1
      ? `${restart[0]} takes effect only after a server restart.`
      : "All of them take effect only after a server restart.";
  }
  const verb = restart.length === 1 ? "takes" : "take";
  return `${listNames(restart)} ${verb} effect only after a server restart; the others on a configuration reload.`;
}

/** One line summing up an apply or rollback result. */
export function describeApply(r: ApplyReport): string {
  const what = r.action === "rollback" ? "Rolled back" : "Applied";
  const n = r.settings.length;
  const count = `${n} setting${n === 1 ? "" : "s"}`;
  const pending = r.settings.filter((s) => s.pending_restart).map((s) => s.name);
  if (pending.length === 0) return `${what} ${count}; in effect now.`;
  return `${what} ${count}; ${listNames(pending)} ${pending.length === 1 ? "waits" : "wait"} for a server restart.`;
}
