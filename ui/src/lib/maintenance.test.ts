import { describe, expect, it } from "vitest";
import type { MaintenanceConfig, MaintenancePlan, TableEntry, TableStats } from "./bindings";
import {
  badges,
  filterTables,
  SETTING_FIELDS,
  settingChanges,
  sortTables,
  visibleRange,
} from "./maintenance";

function table(
  name: string,
  over: Partial<TableStats> = {},
  entry: Partial<TableEntry> = {},
): TableEntry {
  const stats: TableStats = {
    oid: 1,
    schema: "public",
    name,
    live_tuples: 10_000,
    dead_tuples: 0,
    mod_since_analyze: 0,
    reltuples: 10_000,
    relpages: 100,
    seq_scan: 0,
    seq_tup_read: 0,
    idx_scan: 0,
    last_vacuum: null,
    last_autovacuum: null,
    last_analyze: "2026-01-01T00:00:00Z",
    last_autoanalyze: null,
    heap_bytes: 8 * 1024 * 1024,
    toast_bytes: 0,
    index_bytes: 1024 * 1024,
    xid_age: 1000,
    fillfactor: 100,
    options: [],
    columns: 3,
    columns_with_stats: 3,
    data_width: 40,
    has_nulls: false,
    ...over,
  };
  return {
    stats,
    estimate: {
      source: "estimated",
      bloat_percent: 0,
      bloat_bytes: 0,
      actual_bytes: stats.heap_bytes,
      dead_percent: null,
      caveats: [],
    },
    measured: null,
    below_minimum: false,
    ...entry,
  };
}

const plan = {
  config: {
    vacuum_threshold_percent: 20,
    analyze_threshold_percent: 10,
    freeze_age_fraction: 0.8,
  },
  autovacuum_freeze_max_age: 200_000_000,
} as unknown as Pick<MaintenancePlan, "config" | "autovacuum_freeze_max_age">;

describe("table badges", () => {
  it("a healthy table has none", () => {
    expect(badges(table("ok"), plan)).toEqual([]);
  });

  it("dead tuples past the threshold ask for a vacuum, changed rows for an analyze", () => {
    const t = table("churn", { live_tuples: 6_000, dead_tuples: 4_000, mod_since_analyze: 4_000 });
    expect(badges(t, plan).map((b) => b.label)).toEqual(["vacuum", "analyze"]);
  });

  it("an old transaction id age comes first and is bad", () => {
    const t = table("old", { xid_age: 170_000_000, dead_tuples: 5_000 });
    const b = badges(t, plan);
    expect(b[0]).toMatchObject({ label: "freeze", tone: "bad" });
  });

  it("a table below the minimum size is only informational", () => {
    const t = table("tiny", { live_tuples: 10, dead_tuples: 90 }, { below_minimum: true });
    expect(badges(t, plan)[0]).toMatchObject({ label: "vacuum", tone: "info" });
  });

  it("an estimate with caveats says it is unreliable until measured", () => {
    const t = table("toasty");
    t.estimate.caveats = ["toast_heavy"];
    expect(badges(t, plan).map((b) => b.label)).toContain("estimate unreliable");
    t.measured = { ...t.estimate, source: "measured", caveats: [] };
    expect(badges(t, plan).map((b) => b.label)).not.toContain("estimate unreliable");
  });
});

describe("sorting and filtering", () => {
  const a = table("a", { heap_bytes: 1, dead_tuples: 100 });
  const b = table("B", { heap_bytes: 1000, dead_tuples: 10 });
  const c = table("c", { heap_bytes: 10, dead_tuples: 5000 });

  it("figures sort largest first, names ascending", () => {
    expect(sortTables([a, b, c], "size").map((t) => t.stats.name)).toEqual(["B", "c", "a"]);
    expect(sortTables([a, b, c], "dead").map((t) => t.stats.name)).toEqual(["c", "a", "B"]);
    expect(sortTables([c, b, a], "name").map((t) => t.stats.name)).toEqual(["a", "B", "c"]);
    expect(sortTables([a, b, c], "size", false).map((t) => t.stats.name)).toEqual(["a", "c", "B"]);
  });

  it("filters on the qualified name, ignoring case", () => {
    expect(filterTables([a, b, c], "PUBLIC.b").map((t) => t.stats.name)).toEqual(["B"]);
    expect(filterTables([a, b, c], "  ")).toHaveLength(3);
  });
});

describe("virtual list window", () => {
  it("renders only the rows in view plus an overscan", () => {
    expect(visibleRange(0, 300, 30, 20_000, 5)).toEqual([0, 15]);
    expect(visibleRange(3000, 300, 30, 20_000, 5)).toEqual([95, 115]);
    expect(visibleRange(599_700, 300, 30, 20_000, 5)).toEqual([19_985, 20_000]);
    expect(visibleRange(0, 300, 30, 0, 5)).toEqual([0, 0]);
  });
});

describe("settings form", () => {
  it("sends only what changed: new text sets, an emptied field drops the override", () => {
    const overrides = { window_start: "01:00", max_active_sessions: "10" };
    const form = { window_start: "01:00", window_end: " 05:30 ", max_active_sessions: "" };
    expect(settingChanges(overrides, form)).toEqual({
      window_end: "05:30",
      max_active_sessions: null,
    });
    expect(settingChanges({}, {})).toEqual({});
  });

  it("shows the values in force, off for an unset limit", () => {
    const config = {
      window: { start: "02:00:00", end: "06:00:00" },
      time_zone: null,
      vacuum_threshold_percent: 20,
      guard: { max_active_sessions: null, max_replication_lag_bytes: 1024 },
    } as unknown as MaintenanceConfig;
    const show = (k: string) => SETTING_FIELDS.find((f) => f.key === k)!.inForce(config);
    expect(show("window_start")).toBe("02:00");
    expect(show("time_zone")).toBe("local time");
    expect(show("vacuum_threshold_percent")).toBe("20");
    expect(show("max_active_sessions")).toBe("off");
    expect(show("max_replication_lag")).toBe("1024 B");
  });
});
