import { describe, expect, it } from "vitest";
import type { PlanNode, Session } from "./bindings";
import {
  describeSession,
  formatRows,
  misestimateClass,
  misestimateLabel,
  nodeTitle,
  sessionAge,
  timeShare,
} from "./plan";

function node(over: Partial<PlanNode>): PlanNode {
  return {
    id: 0,
    node_type: "Seq Scan",
    parent_relationship: null,
    join_type: null,
    relation: null,
    alias: null,
    index: null,
    subplan: null,
    filter: null,
    index_cond: null,
    join_cond: null,
    sort_key: [],
    startup_cost: 0,
    total_cost: 1,
    estimated_rows: 1,
    actual_rows: null,
    loops: null,
    actual_rows_total: null,
    rows_removed_by_filter: null,
    misestimate: null,
    inclusive_ms: null,
    exclusive_ms: null,
    buffers: null,
    workers_planned: null,
    workers_launched: null,
    sort_method: null,
    sort_space_type: null,
    sort_space_kb: null,
    hash_batches: null,
    original_hash_batches: null,
    hints: [],
    children: [],
    ...over,
  };
}

describe("timeShare", () => {
  it("colours at 10, 50 and 90 % of the execution", () => {
    expect(timeShare(5, 100)).toBe("low");
    expect(timeShare(10, 100)).toBe("notable");
    expect(timeShare(50, 100)).toBe("high");
    expect(timeShare(95, 100)).toBe("dominant");
  });
  it("says nothing without timing", () => {
    expect(timeShare(null, 100)).toBe("low");
    expect(timeShare(3, 0)).toBe("low");
  });
});

describe("misestimates", () => {
  it("labels the factor and its direction", () => {
    const n = node({
      misestimate: { factor: 1234.4, underestimated: true, level: "thousandfold" },
    });
    expect(misestimateLabel(n)).toBe("×1,234 under");
    expect(misestimateClass("thousandfold")).toBe("mis-1000");
  });
  it("stays quiet within 10×", () => {
    const n = node({ misestimate: { factor: 3, underestimated: false, level: "ok" } });
    expect(misestimateLabel(n)).toBe("");
    expect(misestimateClass("ok")).toBe("");
  });
});

describe("nodeTitle", () => {
  it("names the relation, alias and index", () => {
    expect(nodeTitle(node({ relation: "orders", alias: "o" }))).toBe("Seq Scan on orders o");
    expect(
      nodeTitle(
        node({
          node_type: "Index Scan",
          index: "orders_pkey",
          relation: "orders",
          alias: "orders",
        }),
      ),
    ).toBe("Index Scan using orders_pkey on orders");
    expect(nodeTitle(node({ node_type: "Hash Join", join_type: "Left" }))).toBe("Left Hash Join");
  });
});

describe("formatRows", () => {
  it("keeps per-loop fractions", () => {
    expect(formatRows(12345)).toBe("12,345");
    expect(formatRows(0.25)).toBe("0.3");
    expect(formatRows(null)).toBe("—");
  });
});

describe("sessions", () => {
  const base: Session = {
    pid: 42,
    user: "alice",
    application: "psql",
    database: "app",
    client_addr: null,
    backend_type: "client backend",
    state: "active",
    wait_event_type: null,
    wait_event: null,
    query: "select 1",
    query_truncated: false,
    backend_seconds: 100,
    xact_seconds: 50,
    query_seconds: 5,
    state_seconds: 5,
    blocked_by: [],
    long_running: false,
    idle_in_transaction: false,
    own_session: false,
    pgsteward: false,
  };
  it("ages an active session by its query and an idle transaction by the transaction", () => {
    expect(sessionAge(base)).toBe(5);
    expect(
      sessionAge({
        ...base,
        state: "idle in transaction",
        idle_in_transaction: true,
        state_seconds: 3,
      }),
    ).toBe(50);
  });
  it("names the session for a confirmation", () => {
    expect(describeSession(base)).toBe("pid 42 · alice · psql · app");
    expect(describeSession({ ...base, user: null, application: "" })).toBe("pid 42 · app");
  });
});
