// Form model for the connection part of a project, and conversions to the
// IPC input shape.
import type { ConnectionInput, ProjectSummary, SslMode } from "./bindings";
import { appError } from "./errors";

export type ConnKind = ConnectionInput["kind"];

export const SSL_MODES: readonly SslMode[] = [
  "disable",
  "allow",
  "prefer",
  "require",
  "verify-ca",
  "verify-full",
];

export interface ConnectionForm {
  kind: ConnKind;
  uri: string;
  conninfo: string;
  host: string;
  port: string;
  user: string;
  dbname: string;
  sslmode: SslMode | "";
}

export function emptyConnectionForm(): ConnectionForm {
  return {
    kind: "uri",
    uri: "",
    conninfo: "",
    host: "",
    port: "",
    user: "",
    dbname: "",
    sslmode: "",
  };
}

/** Quotes a conninfo value when needed (libpq key=value syntax). */
export function quoteConninfoValue(value: string): string {
  if (value !== "" && !/[\s'\\]/.test(value)) return value;
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** key=value connection string describing a stored project (no password). */
export function conninfoFromSummary(p: ProjectSummary): string {
  const pairs: [string, string | number | null][] = [
    ["service", p.service],
    ["host", p.host],
    ["port", p.port],
    ["user", p.user],
    ["dbname", p.dbname],
    ["sslmode", p.sslmode],
  ];
  return pairs
    .filter((pair): pair is [string, string | number] => pair[1] !== null && pair[1] !== "")
    .map(([k, v]) => `${k}=${quoteConninfoValue(String(v))}`)
    .join(" ");
}

/** Pre-fills the form from a stored project. Fields are used unless a service is set. */
export function formFromSummary(p: ProjectSummary): ConnectionForm {
  return {
    kind: p.service ? "key_value" : "fields",
    uri: "",
    conninfo: conninfoFromSummary(p),
    host: p.host ?? "",
    port: p.port === null ? "" : String(p.port),
    user: p.user ?? "",
    dbname: p.dbname ?? "",
    sslmode: p.sslmode ?? "",
  };
}

function orNull(value: string): string | null {
  const v = value.trim();
  return v === "" ? null : v;
}

/** Parses a TCP port; empty means default. Throws an `invalid_input` error otherwise. */
export function parsePort(value: string): number | null {
  const v = value.trim();
  if (v === "") return null;
  if (!/^\d+$/.test(v)) throw appError("invalid_input", `Port must be a number, got "${v}".`);
  const n = Number(v);
  if (n < 1 || n > 65535) throw appError("invalid_input", "Port must be between 1 and 65535.");
  return n;
}

/** Builds the IPC connection input. Throws an `invalid_input` error for bad fields. */
export function connectionFromForm(f: ConnectionForm): ConnectionInput {
  switch (f.kind) {
    case "uri":
      return { kind: "uri", uri: f.uri.trim() };
    case "key_value":
      return { kind: "key_value", conninfo: f.conninfo.trim() };
    case "fields":
      return {
        kind: "fields",
        host: orNull(f.host),
        port: parsePort(f.port),
        user: orNull(f.user),
        dbname: orNull(f.dbname),
        sslmode: f.sslmode === "" ? null : f.sslmode,
      };
  }
}

/** Short `user@host:port/dbname` description of a stored project. */
export function describeTarget(p: ProjectSummary): string {
  if (p.service && !p.host) return `service ${p.service}`;
  const user = p.user ? `${p.user}@` : "";
  const host = p.host ?? "localhost";
  const port = p.port !== null ? `:${p.port}` : "";
  const db = p.dbname ? `/${p.dbname}` : "";
  return `${user}${host}${port}${db}`;
}
