// The time ranges picked on the history views, kept while the app runs (across tabs).
import type { HistoryRangeId, RangeId } from "./history";

export const ranges = $state<{ dashboard: RangeId; queries: HistoryRangeId }>({
  dashboard: "live",
  queries: "1h",
});
