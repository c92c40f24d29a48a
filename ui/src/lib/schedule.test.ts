import { describe, expect, it } from "vitest";
import type { ScheduleReport } from "./bindings";
import { cronProblem, formText, scheduleChanges } from "./schedule";

const report: ScheduleReport = {
  project: "app",
  time_zone: "local time (UTC+00:00)",
  jobs: [
    { job: "full", cron: "0 2 * * *", source: "default", next_run: null, last_run: null },
    { job: "verify", cron: "30 3 * * 0", source: "default", next_run: null, last_run: null },
    { job: "recovery_test", cron: null, source: "default", next_run: null, last_run: null },
  ],
};

describe("cronProblem", () => {
  it("accepts five fields with lists, ranges, steps and names", () => {
    expect(cronProblem("0 2 * * *")).toBeNull();
    expect(cronProblem("*/15 1-5,7 1 jan mon-fri")).toBeNull();
    expect(cronProblem("")).toBeNull();
    expect(cronProblem("off")).toBeNull();
  });
  it("names what is wrong", () => {
    expect(cronProblem("0 2 * *")).toMatch(/5 fields.*not 4/);
    expect(cronProblem("0 2 * * * *")).toMatch(/not 6/);
    expect(cronProblem("0 2? * * *")).toMatch(/hour field/);
  });
});

describe("scheduleChanges", () => {
  it("is empty for an unchanged form", () => {
    const form = { full: formText(report, "full"), verify: "30  3 * * 0", recovery_test: "" };
    expect(scheduleChanges(report, form)).toEqual([]);
  });
  it("sets changed jobs and turns emptied ones off", () => {
    const form = { full: "0 1 * * *", verify: "", recovery_test: "0 5 * * 6" };
    expect(scheduleChanges(report, form)).toEqual([
      { job: "full", cron: "0 1 * * *" },
      { job: "verify", cron: null },
      { job: "recovery_test", cron: "0 5 * * 6" },
    ]);
  });
});
