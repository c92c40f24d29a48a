// Names of the kinds of recorded job runs (`JobRun.kind`), as the Backups page shows them.
const KINDS: Record<string, string> = {
  backup: "Backup",
  restore: "Restore",
  verify: "Verify",
  recovery_test: "Recovery test",
  copy: "Copy",
};

export function jobKindLabel(kind: string): string {
  return KINDS[kind] ?? kind;
}
