// The shell samples each opened project into its history; it samples less often while the
// window is hidden. This tells it when the page's visibility changes (the UI itself does not
// poll anything while hidden).
import * as api from "./api";
import { documentVisibility, type VisibilitySource } from "./poller";

/** Reports every visibility change through `notify`; returns an unsubscribe function. */
export function followVisibility(
  source: VisibilitySource = documentVisibility,
  notify: (hidden: boolean) => Promise<unknown> = api.historyVisibility,
): () => void {
  let last = !source.isVisible();
  // Say it at once too: after a reload the shell may still think the window is hidden (it
  // restarts nothing when its interval does not change).
  void notify(last).catch(() => {});
  return source.subscribe(() => {
    const hidden = !source.isVisible();
    if (hidden === last) return;
    last = hidden;
    // A failure only leaves the sampling interval as it was.
    void notify(hidden).catch(() => {});
  });
}
