// Pure helpers of the Schedules panel: labels, a quick check of a cron expression before it
// is sent (the core checks it fully), and the changes a form makes to a project's schedules.
import type { ScheduleChange, ScheduledJob, ScheduleReport } from "./bindings";

export const JOBS: { job: ScheduledJob; label: string; hint: string }[] = [
  {
    job: "full",
    label: "Full backup",
    hint: "Back up, then apply retention (BACKUP_RETENTION_DAYS)",
  },
  { job: "verify", label: "Verify", hint: "Sampled verify of the newest backup" },
  {
    job: "recovery_test",
    label: "Recovery test",
    hint: "Restore the newest backup into a throwaway server and compare it",
  },
];

const FIELDS = ["minute", "hour", "day of month", "month", "day of week"];
const FIELD_CHARS = /^[0-9A-Za-z*,\-/]+$/;

/** Why `text` is not a five-field cron expression, or null when it looks like one ("" is off). */
export function cronProblem(text: string): string | null {
  const t = text.trim();
  if (t === "" || t.toLowerCase() === "off") return null;
  const parts = t.split(/\s+/);
  if (parts.length !== 5) {
    return `needs 5 fields (${FIELDS.join(", ")}), not ${parts.length}`;
  }
  for (let i = 0; i < 5; i++) {
    if (!FIELD_CHARS.test(parts[i])) return `the ${FIELDS[i]} field "${parts[i]}" is not valid`;
  }
  return null;
}

/** Form text of a job: its expression, or "" when off. */
export function formText(report: ScheduleReport, job: ScheduledJob): string {
  return report.jobs.find((j) => j.job === job)?.cron ?? "";
}

/** The jobs whose form text differs from the report (an empty field turns the job off). */
export function scheduleChanges(
  report: ScheduleReport,
  form: Partial<Record<ScheduledJob, string>>,
): ScheduleChange[] {
  const out: ScheduleChange[] = [];
  for (const { job } of JOBS) {
    const text = (form[job] ?? "").trim().split(/\s+/).join(" ");
    const cron = text === "" || text.toLowerCase() === "off" ? null : text;
    if (cron !== (formText(report, job) || null)) out.push({ job, cron });
  }
  return out;
}
