import { describe, expect, it } from "vitest";
import { s3Form, s3Settings } from "./s3form";

describe("s3 form", () => {
  it("round-trips settings and keeps AWS as an empty endpoint", () => {
    const s = {
      bucket: "b",
      prefix: "team",
      endpoint: null,
      region: "eu-west-1",
      allow_http: false,
      access_key_id: "AK",
    };
    expect(s3Settings(s3Form(s))).toEqual(s);
  });

  it("trims what was typed and starts from us-east-1", () => {
    const f = s3Form(null);
    expect(f.region).toBe("us-east-1");
    f.bucket = " b ";
    f.endpoint = " http://127.0.0.1:9000 ";
    f.access_key_id = "AK ";
    expect(s3Settings(f)).toMatchObject({
      bucket: "b",
      endpoint: "http://127.0.0.1:9000",
      access_key_id: "AK",
    });
  });
});
