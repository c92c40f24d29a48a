import { describe, expect, it } from "vitest";
import type { JobProgress } from "./bindings";
import { etaMs, formatEta, progressFigures } from "./progress";

function progress(over: Partial<JobProgress>): JobProgress {
  return {
    job_id: "j",
    kind: "backup",
    project: "p",
    status: "running",
    phase: "storing",
    bytes: 0,
    rate_bytes_per_sec: 0,
    elapsed_ms: 0,
    message: null,
    total_bytes: null,
    total_is_estimate: false,
    eta_ms: null,
    log: [],
    ...over,
  };
}

describe("formatEta", () => {
  it("writes minutes and seconds, hours when needed", () => {
    expect(formatEta(0)).toBe("0:00");
    expect(formatEta(15_000)).toBe("0:15");
    expect(formatEta(61_400)).toBe("1:01");
    expect(formatEta(59 * 60_000 + 59_600)).toBe("1:00:00");
    expect(formatEta(3_723_000)).toBe("1:02:03");
    expect(formatEta(-5_000)).toBe("0:00");
  });
});

describe("etaMs", () => {
  it("is the bytes left at the rate", () => {
    expect(etaMs(250, 1000, 50)).toBe(15_000);
    expect(etaMs(1200, 1000, 50)).toBe(0);
    expect(etaMs(250, null, 50)).toBeNull();
    expect(etaMs(250, 1000, 0)).toBeNull();
    expect(etaMs(0, 1000, 10)).toBeNull();
  });
});

describe("progressFigures", () => {
  it("gives a percent and an ETA when the total and a rate are known", () => {
    const f = progressFigures(
      progress({ bytes: 250, total_bytes: 1000, rate_bytes_per_sec: 50, eta_ms: 15_000 }),
      true,
    );
    expect(f).toEqual({ percent: 25, eta: "ETA 0:15", estimate: false });
  });

  it("computes the ETA itself when the event has none", () => {
    const f = progressFigures(
      progress({ bytes: 500, total_bytes: 1000, rate_bytes_per_sec: 10 }),
      true,
    );
    expect(f.eta).toBe("ETA 0:50");
  });

  it("stays indeterminate without a total, or once the job ended", () => {
    expect(progressFigures(progress({ bytes: 5 }), true).percent).toBeNull();
    expect(progressFigures(null, true).percent).toBeNull();
    expect(progressFigures(progress({ bytes: 5, total_bytes: 10 }), false).percent).toBeNull();
  });

  it("never shows an estimate as done before the phase ends", () => {
    const f = progressFigures(
      progress({ bytes: 1500, total_bytes: 1000, total_is_estimate: true, rate_bytes_per_sec: 10 }),
      true,
    );
    expect(f.percent).toBe(99);
    expect(f.estimate).toBe(true);
    expect(f.eta).toBe("ETA 0:00");
  });

  it("has no rate yet at the start of a phase", () => {
    expect(progressFigures(progress({ total_bytes: 1000 }), true)).toEqual({
      percent: 0,
      eta: null,
      estimate: false,
    });
  });
});
