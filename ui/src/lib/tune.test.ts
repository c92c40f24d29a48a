import { describe, expect, it } from "vitest";
import type { ApplyReport, HardwareProfile, Recommendation, TuneReport } from "./bindings";
import {
  changesFor,
  defaultSelection,
  describeApply,
  emptyForm,
  formatKb,
  formFromProfile,
  inputFromForm,
  listNames,
  parseCount,
  restartSummary,
  selectedItems,
} from "./tune";

function rec(name: string, over: Partial<Recommendation> = {}): Recommendation {
  return {
    name,
    group: "memory",
    current: "4MB",
    recommended: "8MB",
    changes: true,
    reason: "",
    evidence: [],
    expected_effect: null,
    confidence: "high",
    basis: "hardware",
    takes_effect: "reload",
    adjustment: null,
    pending_restart: false,
    ...over,
  };
}

function report(items: Recommendation[]): TuneReport {
  const profile: HardwareProfile = {
    ram_kb: 16 * 1024 * 1024,
    cpus: 4,
    storage: "ssd",
    workload: "web",
    connections: null,
    db_size: "unknown",
    os: "linux",
    source: "entered",
  };
  const parts = { shared_buffers_kb: 0, work_mem_total_kb: 0, maintenance_kb: 0, os_cache_kb: 0 };
  return {
    project: "p",
    server_version: "15.8",
    server_version_num: 150008,
    profile,
    groups: [
      { group: "memory", title: "Memory", items: items.filter((i) => i.group === "memory") },
      {
        group: "connections",
        title: "Connections",
        items: items.filter((i) => i.group === "connections"),
      },
    ],
    memory: { ram_kb: profile.ram_kb, now: parts, after: parts },
    memory_chart_svg: "<svg/>",
    script_sql: "",
    conf_snippet: "",
    evidence_error: null,
  };
}

describe("formatKb", () => {
  it("uses the largest unit that divides exactly, as PostgreSQL does", () => {
    expect(formatKb(16 * 1024 * 1024)).toBe("16GB");
    expect(formatKb(512 * 1024)).toBe("512MB");
    expect(formatKb(1536 * 1024)).toBe("1536MB");
    expect(formatKb(2 * 1024 ** 3)).toBe("2TB");
    expect(formatKb(10280)).toBe("10280kB");
    expect(formatKb(0)).toBe("0kB");
  });
  it("handles missing values", () => {
    expect(formatKb(null)).toBe("—");
    expect(formatKb(undefined)).toBe("—");
    expect(formatKb(Number.NaN)).toBe("—");
  });
});

describe("the profile form", () => {
  it("is pre-filled from a profile and sent back unchanged", () => {
    const f = formFromProfile({
      ram_kb: 8 * 1024 * 1024,
      cpus: 2,
      storage: "hdd",
      workload: "dw",
      connections: 50,
      db_size: "larger_than_ram",
      os: "linux",
      source: "saved",
    });
    expect(f).toEqual({
      ram: "8GB",
      cpus: "2",
      storage: "hdd",
      workload: "dw",
      connections: "50",
      dbSize: "larger_than_ram",
    });
    expect(inputFromForm(f)).toEqual({
      ram: "8GB",
      cpus: 2,
      storage: "hdd",
      workload: "dw",
      connections: 50,
      db_size: "larger_than_ram",
      os: null,
    });
  });
  it("leaves blank fields to the saved profile or detection", () => {
    expect(formFromProfile(null)).toEqual(emptyForm());
    const input = inputFromForm({ ...emptyForm(), ram: "  " });
    expect(input.ram).toBeNull();
    expect(input.cpus).toBeNull();
    expect(input.connections).toBeNull();
  });
  it("refuses counts that are not whole positive numbers", () => {
    expect(parseCount(" 4 ", "CPUs")).toBe(4);
    expect(parseCount("", "CPUs")).toBeNull();
    expect(() => parseCount("0", "CPUs")).toThrow(/CPUs must be/);
    expect(() => parseCount("2.5", "CPUs")).toThrow(RangeError);
    expect(() => parseCount("four", "CPUs")).toThrow(RangeError);
    expect(() => inputFromForm({ ...emptyForm(), connections: "-3" })).toThrow(/Connections/);
  });
});

describe("selection", () => {
  const items = [
    rec("shared_buffers", { takes_effect: "restart" }),
    rec("work_mem"),
    rec("random_page_cost", { changes: false, current: "1.1", recommended: "1.1" }),
    rec("connection_pooling", {
      group: "connections",
      takes_effect: "not_a_setting",
      recommended: null,
    }),
  ];
  const r = report(items);

  it("ticks by default only settings whose value changes", () => {
    expect(defaultSelection(r)).toEqual({
      shared_buffers: true,
      work_mem: true,
      random_page_cost: false,
    });
  });
  it("gives the chosen settings as changes, never advice", () => {
    const chosen = selectedItems(r, {
      work_mem: true,
      shared_buffers: false,
      connection_pooling: true,
    });
    expect(chosen.map((c) => c.name)).toEqual(["work_mem"]);
    expect(changesFor(chosen)).toEqual([{ name: "work_mem", value: "8MB" }]);
  });
  it("says which chosen settings need a restart", () => {
    expect(restartSummary([items[1]])).toBe("All of them take effect on a configuration reload.");
    expect(restartSummary([items[0]])).toBe(
      "shared_buffers takes effect only after a server restart.",
    );
    expect(restartSummary([items[0], items[1]])).toBe(
      "shared_buffers takes effect only after a server restart; the others on a configuration reload.",
    );
  });
});

describe("listNames and describeApply", () => {
  it("joins names", () => {
    expect(listNames([])).toBe("");
    expect(listNames(["a"])).toBe("a");
    expect(listNames(["a", "b"])).toBe("a and b");
    expect(listNames(["a", "b", "c"])).toBe("a, b and c");
  });
  it("sums up an apply with the settings waiting for a restart", () => {
    const base: ApplyReport = {
      project: "p",
      action: "apply",
      history_id: "x",
      settings: [
        {
          name: "work_mem",
          previous: "4MB",
          written: "8MB",
          now: "8MB",
          pending_restart: false,
          needs_restart: false,
        },
      ],
      restart_needed: false,
    };
    expect(describeApply(base)).toBe("Applied 1 setting; in effect now.");
    const pending = {
      ...base,
      action: "rollback",
      settings: [
        ...base.settings,
        {
          name: "shared_buffers",
          previous: "128MB",
          written: null,
          now: "128MB",
          pending_restart: true,
          needs_restart: true,
        },
      ],
    };
    expect(describeApply(pending)).toBe(
      "Rolled back 2 settings; shared_buffers waits for a server restart.",
    );
  });
});
