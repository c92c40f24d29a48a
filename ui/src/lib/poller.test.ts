import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Poller, type VisibilitySource } from "./poller";

class FakeVisibility implements VisibilitySource {
  visible = true;
  private listeners = new Set<() => void>();
  isVisible() {
    return this.visible;
  }
  subscribe(listener: () => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(visible: boolean) {
    this.visible = visible;
    for (const l of this.listeners) l();
  }
  get listenerCount() {
    return this.listeners.size;
  }
}

describe("Poller", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("runs immediately and then every interval", async () => {
    const vis = new FakeVisibility();
    const task = vi.fn(async () => 3000);
    const p = new Poller(task, 1000, vis);
    p.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(2999);
    expect(task).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(task).toHaveBeenCalledTimes(2);
    p.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(task).toHaveBeenCalledTimes(2);
    expect(vis.listenerCount).toBe(0);
  });

  it("pauses while hidden and resumes at once when visible", async () => {
    const vis = new FakeVisibility();
    const task = vi.fn(async () => undefined);
    const p = new Poller(task, 3000, vis);
    p.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(1);
    vis.set(false);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(task).toHaveBeenCalledTimes(1);
    vis.set(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(3000);
    expect(task).toHaveBeenCalledTimes(3);
    p.stop();
  });

  it("does not start while hidden and keeps polling after failures", async () => {
    const vis = new FakeVisibility();
    vis.visible = false;
    const task = vi.fn(async () => {
      throw new Error("boom");
    });
    const p = new Poller(task, 1000, vis);
    p.start();
    await vi.advanceTimersByTimeAsync(5000);
    expect(task).not.toHaveBeenCalled();
    vis.set(true);
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(task).toHaveBeenCalledTimes(2);
    p.stop();
  });
});
