// Tracks backup/restore jobs per project, fed by `job-progress` events.
// Lives outside components so a running job survives tab switches.
import * as api from "./api";
import type { JobKind, JobProgress, JobStatus } from "./bindings";

export interface JobView {
  kind: JobKind;
  /** Started by this window (through `run`). */
  own: boolean;
  /** True while the IPC call that started the job has not returned. */
  running: boolean;
  /** Latest progress event, if any arrived. */
  progress: JobProgress | null;
  /** Outcome once the call returned (or a final event arrived). */
  outcome: JobStatus | null;
}

const FINAL: ReadonlySet<JobStatus> = new Set(["succeeded", "failed", "cancelled"]);

class Jobs {
  byProject = $state<Record<string, JobView>>({});
  #unlisten: (() => void) | null = null;

  async subscribe(): Promise<void> {
    if (this.#unlisten) return;
    this.#unlisten = await api.onJobProgress((p) => this.record(p));
  }

  unsubscribe(): void {
    this.#unlisten?.();
    this.#unlisten = null;
  }

  record(p: JobProgress): void {
    const cur = this.byProject[p.project];
    const final = FINAL.has(p.status);
    const sameJob = cur?.progress?.job_id === p.job_id;
    if (cur && cur.own && cur.running && cur.kind === p.kind) {
      // The call that started it reports the outcome; events only add detail.
      cur.progress = p;
      return;
    }
    if (cur && sameJob) {
      cur.progress = p;
      if (!cur.own && final) {
        cur.running = false;
        cur.outcome = p.status;
      }
      return;
    }
    // A job this window did not start: show it as reported.
    this.byProject[p.project] = {
      kind: p.kind,
      own: false,
      running: !final,
      progress: p,
      outcome: final ? p.status : null,
    };
  }

  get(project: string): JobView | null {
    return this.byProject[project] ?? null;
  }

  isBusy(project: string): boolean {
    return this.byProject[project]?.running ?? false;
  }

  clear(project: string): void {
    delete this.byProject[project];
  }

  /** Runs `work` as the project's job of the given kind. */
  async run<T>(project: string, kind: JobKind, work: () => Promise<T>): Promise<T> {
    this.byProject[project] = { kind, own: true, running: true, progress: null, outcome: null };
    let outcome: JobStatus = "failed";
    try {
      const result = await work();
      outcome = "succeeded";
      return result;
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      outcome = code === "cancelled" ? "cancelled" : "failed";
      throw err;
    } finally {
      const view = this.byProject[project];
      if (view) {
        view.running = false;
        view.outcome = outcome;
      }
    }
  }
}

export const jobs = new Jobs();
