// Pure helpers for the plan tree and the activity lists: what colour a figure gets and how a
// node is summarised. Kept apart from the components so they can be unit tested.
import type { MisestimateLevel, PlanNode, Session } from "./bindings";

/** Share of the whole execution spent in a node alone, as pgAdmin colours it (10/50/90 %). */
export type TimeShare = "low" | "notable" | "high" | "dominant";

export function timeShare(exclusiveMs: number | null, totalMs: number | null): TimeShare {
  if (exclusiveMs === null || totalMs === null || totalMs <= 0) return "low";
  const share = exclusiveMs / totalMs;
  if (share >= 0.9) return "dominant";
  if (share >= 0.5) return "high";
  if (share >= 0.1) return "notable";
  return "low";
}

/** "×12 under" / "×340 over"; empty when the estimate was within 10×. */
export function misestimateLabel(node: PlanNode): string {
  const m = node.misestimate;
  if (!m || m.level === "ok") return "";
  const factor = m.factor >= 100 ? Math.round(m.factor) : Math.round(m.factor * 10) / 10;
  return `×${factor.toLocaleString("en-US")} ${m.underestimated ? "under" : "over"}`;
}

export function misestimateClass(level: MisestimateLevel | undefined): string {
  switch (level) {
    case "tenfold":
      return "mis-10";
    case "hundredfold":
      return "mis-100";
    case "thousandfold":
      return "mis-1000";
    default:
      return "";
  }
}

/** The node's title: type, then what it works on ("Seq Scan on orders o", "Index Scan using i"). */
export function nodeTitle(node: PlanNode): string {
  let title = node.node_type;
  if (node.join_type && !title.includes(node.join_type)) title = `${node.join_type} ${title}`;
  if (node.index) title += ` using ${node.index}`;
  if (node.relation) {
    title += ` on ${node.relation}`;
    if (node.alias && node.alias !== node.relation) title += ` ${node.alias}`;
  } else if (node.subplan) {
    title += ` (${node.subplan})`;
  }
  return title;
}

/** Whole numbers with thousands separators; fractions of a row (per-loop averages) keep one decimal. */
export function formatRows(rows: number | null | undefined): string {
  if (rows === null || rows === undefined || !Number.isFinite(rows)) return "—";
  const rounded = Number.isInteger(rows) ? rows : Math.round(rows * 10) / 10;
  return rounded.toLocaleString("en-US");
}

/** How long a session has been doing what it does now: the query if active, else the transaction. */
export function sessionAge(s: Session): number | null {
  if (s.state === "active") return s.query_seconds;
  if (s.idle_in_transaction) return s.xact_seconds ?? s.state_seconds;
  return s.state_seconds;
}

/** The session a cancel or terminate is about, as the confirmation shows it. */
export type SignalTarget = {
  pid: number;
  user: string | null;
  application: string | null;
  database: string | null;
  query: string | null;
};

/** One line naming a session for a confirmation: "pid 4242 · alice · psql · app". */
export function describeSession(s: Omit<SignalTarget, "query">): string {
  return [`pid ${s.pid}`, s.user, s.application, s.database].filter((x) => x).join(" · ");
}
