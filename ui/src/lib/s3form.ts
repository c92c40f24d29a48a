// The S3 fields of the storage panel as a form, and back to the settings the core takes.
// The secret access key is never part of these: it goes straight to the keyring.
import type { S3Settings } from "./bindings";

export interface S3Form {
  bucket: string;
  prefix: string;
  endpoint: string;
  region: string;
  allow_http: boolean;
  access_key_id: string;
}

export function s3Form(s: S3Settings | null | undefined): S3Form {
  return {
    bucket: s?.bucket ?? "",
    prefix: s?.prefix ?? "",
    endpoint: s?.endpoint ?? "",
    region: s?.region ?? "us-east-1",
    allow_http: s?.allow_http ?? false,
    access_key_id: s?.access_key_id ?? "",
  };
}

/** Trimmed settings; an empty endpoint means AWS. */
export function s3Settings(f: S3Form): S3Settings {
  const endpoint = f.endpoint.trim();
  return {
    bucket: f.bucket.trim(),
    prefix: f.prefix.trim(),
    endpoint: endpoint === "" ? null : endpoint,
    region: f.region.trim(),
    allow_http: f.allow_http,
    access_key_id: f.access_key_id.trim(),
  };
}
