import { describe, expect, it } from "vitest";
import {
  compressionRatio,
  defaultRestoreName,
  formatBytes,
  formatDurationMs,
  formatLatency,
  formatPercent,
  formatRate,
  formatTps,
  formatUptime,
  normalizeRatio,
} from "./format";

describe("formatBytes", () => {
  it("formats small values in bytes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1023)).toBe("1023 B");
  });
  it("uses binary units", () => {
    expect(formatBytes(1024)).toBe("1.0 KiB");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.0 MiB");
    expect(formatBytes(150 * 1024 * 1024)).toBe("150 MiB");
    expect(formatBytes(3.25 * 1024 ** 3)).toBe("3.3 GiB");
  });
  it("does not print 1024 of a unit", () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe("1.0 MiB");
  });
  it("handles missing values", () => {
    expect(formatBytes(null)).toBe("—");
    expect(formatBytes(Number.NaN)).toBe("—");
  });
});

describe("formatRate", () => {
  it("appends per second", () => {
    expect(formatRate(2 * 1024 * 1024)).toBe("2.0 MiB/s");
    expect(formatRate(0)).toBe("0 B/s");
    expect(formatRate(null)).toBe("—");
  });
});

describe("durations", () => {
  it("formats uptime with the two largest units", () => {
    expect(formatUptime(42)).toBe("42s");
    expect(formatUptime(125)).toBe("2m 5s");
    expect(formatUptime(3 * 3600 + 7 * 60 + 9)).toBe("3h 7m");
    expect(formatUptime(2 * 86400 + 5 * 3600 + 59)).toBe("2d 5h");
    expect(formatUptime(-1)).toBe("—");
  });
  it("formats millisecond durations", () => {
    expect(formatDurationMs(850)).toBe("850 ms");
    expect(formatDurationMs(1234)).toBe("1.2 s");
    expect(formatDurationMs(42_900)).toBe("42 s");
    expect(formatDurationMs(125_000)).toBe("2m 05s");
    expect(formatDurationMs(3_720_000)).toBe("1h 02m");
  });
});

describe("rates and ratios", () => {
  it("formats tps with one decimal", () => {
    expect(formatTps(12.345)).toBe("12.3");
    expect(formatTps(0)).toBe("0.0");
    expect(formatTps(null)).toBe("—");
  });
  it("formats cache hit ratio as percent", () => {
    expect(formatPercent(0.9923)).toBe("99.2 %");
    expect(formatPercent(1)).toBe("100.0 %");
    expect(formatPercent(87.5)).toBe("87.5 %");
    expect(formatPercent(null)).toBe("—");
    expect(normalizeRatio(0.5)).toBe(0.5);
    expect(normalizeRatio(95)).toBeCloseTo(0.95);
  });
});

describe("defaultRestoreName", () => {
  it("appends a local timestamp", () => {
    expect(defaultRestoreName("app", new Date(2024, 0, 5, 9, 7))).toBe(
      "app_restored_20240105_0907",
    );
  });
});

describe("formatLatency", () => {
  it("keeps one decimal below 10 ms", () => {
    expect(formatLatency(0.84)).toBe("0.8 ms");
    expect(formatLatency(12.6)).toBe("13 ms");
  });
});

describe("compressionRatio", () => {
  it("says how much smaller the stored backup is", () => {
    expect(compressionRatio({ plaintext_bytes: 4200, stored_bytes: 1000 })).toBe("4.2×");
    expect(compressionRatio({ plaintext_bytes: 25000, stored_bytes: 1000 })).toBe("25×");
    expect(compressionRatio({ plaintext_bytes: 0, stored_bytes: 0 })).toBe("—");
  });
});
