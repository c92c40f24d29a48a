// The single, app-wide error banner.
import type { Error as AppError } from "./bindings";
import { toAppError } from "./errors";

interface Shown {
  error: AppError;
  /** Optional origin, e.g. "dashboard", so the origin can clear its own error. */
  source: string | null;
}

function keyOf(e: AppError): string {
  return `${e.code}\u0000${e.message}`;
}

class Banner {
  current = $state<Shown | null>(null);
  /** Last dismissed error per source (see `showRepeating`). */
  #dismissed = new Map<string, string>();

  show(err: unknown, source: string | null = null): void {
    this.current = { error: toAppError(err), source };
  }

  /**
   * For sources that fail repeatedly (polling): once the user dismissed an
   * error, the same error from that source is not shown again until `clear`.
   */
  showRepeating(err: unknown, source: string): void {
    const error = toAppError(err);
    if (this.#dismissed.get(source) === keyOf(error)) return;
    this.current = { error, source };
  }

  dismiss(): void {
    const cur = this.current;
    if (cur?.source) this.#dismissed.set(cur.source, keyOf(cur.error));
    this.current = null;
  }

  /** Called by a source once it succeeds again. */
  clear(source: string): void {
    this.#dismissed.delete(source);
    if (this.current?.source === source) this.current = null;
  }
}

export const banner = new Banner();
