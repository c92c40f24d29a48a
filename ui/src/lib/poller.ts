// Visibility-aware polling: runs a task repeatedly, never overlapping, and
// only while the page is visible. Resumes immediately when it becomes visible.

export interface VisibilitySource {
  isVisible(): boolean;
  /** Calls `listener` on every visibility change; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

export const documentVisibility: VisibilitySource = {
  isVisible: () => document.visibilityState === "visible",
  subscribe(listener) {
    document.addEventListener("visibilitychange", listener);
    return () => document.removeEventListener("visibilitychange", listener);
  },
};

/**
 * The task resolves to the interval (ms) to wait before the next run, or
 * undefined to use the default interval. Its errors are the task's own
 * business: a rejection is swallowed and polling continues.
 */
export type PollTask = () => Promise<number | undefined | void>;

export class Poller {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private inFlight = false;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly task: PollTask,
    private readonly defaultIntervalMs: number,
    private readonly visibility: VisibilitySource = documentVisibility,
    private readonly now: () => number = () => Date.now(),
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.visibility.subscribe(() => this.onVisibilityChange());
    if (this.visibility.isVisible()) void this.tick();
  }

  stop(): void {
    this.running = false;
    this.clearTimer();
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  get active(): boolean {
    return this.running;
  }

  private onVisibilityChange(): void {
    if (!this.running) return;
    if (this.visibility.isVisible()) {
      // Resume right away (unless a run is still going; it reschedules itself).
      this.clearTimer();
      if (!this.inFlight) void this.tick();
    } else {
      this.clearTimer();
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private async tick(): Promise<void> {
    this.timer = null;
    if (!this.running || this.inFlight) return;
    this.inFlight = true;
    const startedAt = this.now();
    let interval: number | undefined | void;
    try {
      interval = await this.task();
    } catch {
      interval = undefined;
    } finally {
      this.inFlight = false;
    }
    if (!this.running || !this.visibility.isVisible() || this.timer !== null) return;
    const wanted =
      typeof interval === "number" && Number.isFinite(interval) && interval > 0
        ? interval
        : this.defaultIntervalMs;
    const delay = Math.max(0, wanted - (this.now() - startedAt));
    this.timer = setTimeout(() => void this.tick(), delay);
  }
}
