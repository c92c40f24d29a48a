import { describe, expect, it } from "vitest";
import type { RuleConfig } from "./bindings";
import { parseThreshold, ruleSummary, thresholdText } from "./alerts";

const latency: RuleConfig = {
  rule: "statement_latency",
  enabled: true,
  direction: "above",
  threshold: 100,
  clear: 80,
  for_samples: 2,
  unit: "ms",
};
const cache: RuleConfig = {
  rule: "cache_hit_ratio",
  enabled: true,
  direction: "below",
  threshold: 0.9,
  clear: 0.92,
  for_samples: 3,
  unit: "ratio",
};

describe("alert rules for people", () => {
  it("summarises thresholds, hysteresis and units", () => {
    expect(ruleSummary(latency)).toBe("above 100 ms, after 2 samples; clears at 80 ms");
    expect(ruleSummary(cache)).toBe("below 90 %, after 3 samples; clears at 92 %");
    expect(thresholdText(cache)).toBe("90 %");
  });
  it("reads percentages back as ratios and refuses nonsense", () => {
    expect(parseThreshold(cache, "95 %")).toBeCloseTo(0.95);
    expect(parseThreshold(latency, "250")).toBe(250);
    expect(parseThreshold(latency, "-1")).toBeNull();
    expect(parseThreshold(latency, "abc")).toBeNull();
    expect(parseThreshold(latency, "")).toBeNull();
  });
});
