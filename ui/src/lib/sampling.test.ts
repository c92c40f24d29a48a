import { describe, expect, it } from "vitest";
import type { VisibilitySource } from "./poller";
import { followVisibility } from "./sampling";

function fakeVisibility(visible: boolean) {
  const listeners = new Set<() => void>();
  const source: VisibilitySource = {
    isVisible: () => visible,
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  return {
    source,
    set(v: boolean) {
      visible = v;
      listeners.forEach((l) => l());
    },
    count: () => listeners.size,
  };
}

describe("followVisibility", () => {
  it("reports changes once each and stops when unsubscribed", () => {
    const v = fakeVisibility(true);
    const calls: boolean[] = [];
    const stop = followVisibility(v.source, async (h) => calls.push(h));
    expect(calls).toEqual([false]);
    v.set(false);
    v.set(false);
    v.set(true);
    expect(calls).toEqual([false, true, false]);
    stop();
    expect(v.count()).toBe(0);
  });

  it("tells the starting state at once", () => {
    const v = fakeVisibility(false);
    const calls: boolean[] = [];
    followVisibility(v.source, async (h) => calls.push(h));
    expect(calls).toEqual([true]);
  });

  it("survives a failing shell", async () => {
    const v = fakeVisibility(true);
    followVisibility(v.source, () => Promise.reject(new Error("no shell")));
    expect(() => v.set(false)).not.toThrow();
  });
});
