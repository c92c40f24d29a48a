const SELECTED_KEY = "pgsteward.selectedProject";

export function loadSelectedProject(): string | null {
  try {
    return localStorage.getItem(SELECTED_KEY);
  } catch {
    return null;
  }
}

export function saveSelectedProject(name: string | null): void {
  try {
    if (name === null) localStorage.removeItem(SELECTED_KEY);
    else localStorage.setItem(SELECTED_KEY, name);
  } catch {
    // Storage may be unavailable; the selection is then simply not remembered.
  }
}
