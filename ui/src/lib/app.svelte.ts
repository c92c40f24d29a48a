// Application-level state: projects, selection and the current view.
import * as api from "./api";
import type { AppInfo, ProjectSummary } from "./bindings";
import { banner } from "./banner.svelte";
import { loadSelectedProject, saveSelectedProject } from "./storage";

export type View = { kind: "project" } | { kind: "new" } | { kind: "edit"; name: string };
export type ProjectTab =
  | "dashboard"
  | "activity"
  | "queries"
  | "explain"
  | "health"
  | "alerts"
  | "pool"
  | "maintenance"
  | "backups"
  | "tuning";

class AppState {
  info = $state<AppInfo | null>(null);
  projects = $state<ProjectSummary[]>([]);
  selected = $state<string | null>(null);
  view = $state<View>({ kind: "project" });
  tab = $state<ProjectTab>("dashboard");
  loading = $state(true);
  sandboxStarting = $state(false);
  /** Statement to put in the Explain page's editor when it opens (from the Queries tab). */
  explainPrefill = $state<string | null>(null);

  current = $derived(this.projects.find((p) => p.name === this.selected) ?? null);

  async init(): Promise<void> {
    this.loading = true;
    let listed: boolean;
    try {
      try {
        this.info = await api.appInfo();
      } catch (err) {
        banner.show(err);
      }
      listed = await this.refresh(loadSelectedProject());
    } finally {
      this.loading = false;
    }
    if (listed && this.projects.length === 0 && this.info?.auto_sandbox) {
      await this.startSandbox();
    }
  }

  /** Reloads the project list, keeping (or setting) the selection. False if it failed. */
  async refresh(prefer: string | null = this.selected): Promise<boolean> {
    try {
      const list = await api.projectList();
      this.projects = [...list].sort((a, b) => a.name.localeCompare(b.name));
    } catch (err) {
      banner.show(err);
      return false;
    }
    const names = this.projects.map((p) => p.name);
    const next = prefer !== null && names.includes(prefer) ? prefer : (names[0] ?? null);
    this.setSelected(next);
    return true;
  }

  private setSelected(name: string | null): void {
    this.selected = name;
    saveSelectedProject(name);
  }

  select(name: string): void {
    if (this.selected !== name) this.tab = "dashboard";
    this.setSelected(name);
    this.view = { kind: "project" };
  }

  showProject(): void {
    this.view = { kind: "project" };
  }

  newProject(): void {
    this.view = { kind: "new" };
  }

  editProject(name: string): void {
    this.view = { kind: "edit", name };
  }

  /** After a create or update: reload and show the saved project. */
  async saved(project: ProjectSummary): Promise<void> {
    await this.refresh(project.name);
    this.select(project.name);
  }

  async removed(name: string): Promise<void> {
    await this.refresh(this.selected === name ? null : this.selected);
    this.view = { kind: "project" };
    this.tab = "dashboard";
  }

  /** Opens the Explain tab with `sql` in its editor. */
  explainStatement(sql: string): void {
    this.explainPrefill = sql;
    this.tab = "explain";
  }

  /** The prefilled statement, once: the Explain page takes it when it opens. */
  takeExplainPrefill(): string | null {
    const sql = this.explainPrefill;
    this.explainPrefill = null;
    return sql;
  }

  async startSandbox(): Promise<void> {
    if (this.sandboxStarting) return;
    this.sandboxStarting = true;
    try {
      const project = await api.sandboxStart();
      await this.refresh(project.name);
      this.select(project.name);
    } catch (err) {
      banner.show(err);
    } finally {
      this.sandboxStarting = false;
    }
  }
}

export const app = new AppState();
