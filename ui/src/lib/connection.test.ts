import { describe, expect, it } from "vitest";
import type { ProjectSummary } from "./bindings";
import {
  conninfoFromSummary,
  connectionFromForm,
  describeTarget,
  emptyConnectionForm,
  formFromSummary,
  parsePort,
} from "./connection";

const summary: ProjectSummary = {
  name: "prod",
  description: "",
  host: "db.internal",
  port: 5433,
  user: "dba",
  dbname: "my app",
  sslmode: "require",
  service: null,
  has_password: true,
  sandbox: false,
  created_at: "2024-01-01T00:00:00Z",
};

describe("connection form", () => {
  it("builds each input kind", () => {
    const f = emptyConnectionForm();
    f.uri = " postgresql://u@h/db ";
    expect(connectionFromForm(f)).toEqual({ kind: "uri", uri: "postgresql://u@h/db" });
    f.kind = "key_value";
    f.conninfo = "host=h dbname=d";
    expect(connectionFromForm(f)).toEqual({ kind: "key_value", conninfo: "host=h dbname=d" });
    f.kind = "fields";
    f.host = "h";
    f.port = "5432";
    expect(connectionFromForm(f)).toEqual({
      kind: "fields",
      host: "h",
      port: 5432,
      user: null,
      dbname: null,
      sslmode: null,
    });
  });

  it("rejects bad ports", () => {
    expect(parsePort("")).toBeNull();
    expect(() => parsePort("abc")).toThrow();
    expect(() => parsePort("70000")).toThrow();
  });

  it("prefills from a stored project", () => {
    const f = formFromSummary(summary);
    expect(f.kind).toBe("fields");
    expect(f.port).toBe("5433");
    expect(conninfoFromSummary(summary)).toBe(
      "host=db.internal port=5433 user=dba dbname='my app' sslmode=require",
    );
    expect(describeTarget(summary)).toBe("dba@db.internal:5433/my app");
  });
});
