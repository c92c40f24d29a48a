import { describe, expect, it } from "vitest";
import type { PoolMetrics, TopQuery } from "./bindings";
import {
  circuitLabel,
  formatCount,
  hasPlaceholders,
  HISTORY_RANGES,
  idleShare,
  meanWaitMs,
  oneLine,
  RANGES,
  refreshIntervalMs,
  sortValue,
  toHistoryRange,
} from "./history";

const pool: PoolMetrics = {
  size: 20,
  max_overflow: 30,
  in_use: 1,
  idle: 2,
  waiters: 0,
  acquisitions: 0,
  served_from_idle: 0,
  connections_opened: 3,
  connections_closed: 0,
  timeouts: 0,
  connect_failures: 0,
  wait_ms_total: 0,
  wait_ms_max: 0,
  circuit: "closed",
  circuit_opened_times: 0,
};

describe("ranges", () => {
  it("lists Live first and maps the others to the core's ranges", () => {
    expect(RANGES.map((r) => r.id)).toEqual(["live", "15m", "1h", "24h", "7d", "30d"]);
    expect(HISTORY_RANGES.map((r) => r.id)).not.toContain("live");
    expect(toHistoryRange("15m")).toEqual({ kind: "last15m" });
    expect(toHistoryRange("30d")).toEqual({ kind: "last30d" });
  });

  it("refreshes short ranges more often", () => {
    expect(refreshIntervalMs("15m")).toBeLessThan(refreshIntervalMs("24h"));
    expect(refreshIntervalMs("7d")).toBe(refreshIntervalMs("30d"));
  });
});

describe("queries", () => {
  const q: TopQuery = {
    queryid: "1",
    query: "SELECT 1",
    calls: 4,
    total_ms: 100,
    mean_ms: 25,
    rows: 4,
    shared_blks_read: 7,
    temp_blks_written: 9,
    share_of_total: 0.5,
  };

  it("ranks by the sorted figure", () => {
    expect(sortValue(q, "total")).toBe(100);
    expect(sortValue(q, "mean")).toBe(25);
    expect(sortValue(q, "read")).toBe(7);
    expect(sortValue(q, "temp")).toBe(9);
  });

  it("shows statements on one line", () => {
    expect(oneLine("SELECT a,\n\t  b FROM t")).toBe("SELECT a, b FROM t");
    expect(oneLine("x".repeat(200), 10)).toBe("xxxxxxxxx…");
  });

  it("notices placeholders", () => {
    expect(hasPlaceholders("SELECT pg_sleep($1)")).toBe(true);
    expect(hasPlaceholders("SELECT '$' || x")).toBe(false);
  });

  it("formats counts", () => {
    expect(formatCount(3)).toBe("3");
    expect(formatCount(12345.2)).toBe("12,345");
    expect(formatCount(0.25)).toBe("0.25");
    expect(formatCount(null)).toBe("—");
  });
});

describe("pool", () => {
  it("has no shares before the first acquisition", () => {
    expect(idleShare(pool)).toBeNull();
    expect(meanWaitMs(pool)).toBeNull();
  });

  it("divides by acquisitions", () => {
    const m = { ...pool, acquisitions: 10, served_from_idle: 9, wait_ms_total: 5 };
    expect(idleShare(m)).toBeCloseTo(0.9);
    expect(meanWaitMs(m)).toBeCloseTo(0.5);
    expect(circuitLabel({ ...m, circuit: "open" })).toMatch(/^Open/);
  });
});
