//! What the shell keeps between commands: the core, the sandbox's background activity, and
//! the history samplers of the projects the UI has opened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgsteward::monitor::sampler::OnSample;
use pgsteward::monitor::{SamplerHandle, SamplerState};
use pgsteward::{sandbox, Steward};

/// Overrides the foreground sampling interval, in milliseconds (used by end-to-end tests).
pub const SAMPLE_INTERVAL_ENV: &str = "PGSTEWARD_SAMPLE_INTERVAL_MS";

pub struct AppState {
    pub steward: Arc<Steward>,
    activity: Mutex<Option<tauri::async_runtime::JoinHandle<()>>>,
    samplers: Mutex<Samplers>,
    /// Called after each background sample (tells the user about alerts).
    on_sample: Mutex<Option<OnSample>>,
}

/// At most one background sampler per project, all at the interval of the window's state.
#[derive(Default)]
struct Samplers {
    hidden: bool,
    running: HashMap<String, (Duration, SamplerHandle)>,
}

impl AppState {
    pub fn new(steward: Arc<Steward>) -> Self {
        AppState {
            steward,
            activity: Mutex::new(None),
            samplers: Mutex::new(Samplers::default()),
            on_sample: Mutex::new(None),
        }
    }

    /// What every sampler started from now on calls after each pass.
    pub fn set_on_sample(&self, f: OnSample) {
        *self.on_sample.lock().unwrap() = Some(f);
    }

    fn start(&self, name: &str, every: Duration) -> pgsteward::Result<SamplerHandle> {
        let cb = self.on_sample.lock().unwrap().clone();
        self.steward.start_sampler_with(name, every, cb)
    }

    /// Time between samples: the core's default while the window is seen, its slower one
    /// while it is hidden or minimised.
    fn sample_interval(&self, hidden: bool) -> Duration {
        let opts = self.steward.history_options();
        if hidden {
            return opts.background_interval;
        }
        std::env::var(SAMPLE_INTERVAL_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms >= 100)
            .map(Duration::from_millis)
            .unwrap_or(opts.interval)
    }

    /// Start sampling `name` into its history unless it already is (a sampler that ended is
    /// started again). Returns what the sampler did so far.
    pub fn ensure_sampler(&self, name: &str) -> pgsteward::Result<SamplerState> {
        let mut s = self.samplers.lock().unwrap();
        if let Some((_, h)) = s.running.get(name) {
            if h.is_running() {
                return Ok(h.state());
            }
        }
        let every = self.sample_interval(s.hidden);
        let handle = self.start(name, every)?;
        let state = handle.state();
        // Replacing a finished handle drops it; dropping stops nothing that still runs.
        s.running.insert(name.to_string(), (every, handle));
        Ok(state)
    }

    /// The window was hidden or shown: restart the samplers at the matching interval.
    pub fn set_hidden(&self, hidden: bool) -> pgsteward::Result<()> {
        let every = self.sample_interval(hidden);
        let mut s = self.samplers.lock().unwrap();
        s.hidden = hidden;
        let names: Vec<String> = s
            .running
            .iter()
            .filter(|(_, (interval, _))| *interval != every)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            // Dropping the old handle stops its loop after the pass in progress; the new one
            // takes its first sample at once, which is harmless (rates are per second).
            s.running.remove(&name);
            if self.steward.store().get(&name).is_ok() {
                let handle = self.start(&name, every)?;
                s.running.insert(name, (every, handle));
            }
        }
        Ok(())
    }

    /// Stop sampling `name` and wait for a pass in progress to end (before the project goes).
    pub async fn stop_sampler(&self, name: &str) {
        let handle = self.samplers.lock().unwrap().running.remove(name);
        if let Some((_, h)) = handle {
            h.stop().await;
        }
    }

    /// Keep the sandbox busy while the app runs, so its charts move.
    pub fn ensure_sandbox_activity(&self) {
        let mut slot = self.activity.lock().unwrap();
        if slot.is_some() {
            return;
        }
        if let Ok(pool) = self.steward.pool(sandbox::PROJECT) {
            *slot = Some(tauri::async_runtime::spawn(async move {
                let _ = sandbox::spawn_activity(pool).await;
            }));
        }
    }

    /// If a sandbox project exists from an earlier run, start its server again in the background.
    pub fn resume_sandbox(&self) {
        let is_sandbox = self
            .steward
            .store()
            .get(sandbox::PROJECT)
            .map(|p| p.sandbox)
            .unwrap_or(false);
        if !is_sandbox {
            return;
        }
        let st = self.steward.clone();
        tauri::async_runtime::spawn(async move {
            if let Err(e) = sandbox::start(&st).await {
                tracing::warn!(error = %e, "could not restart the sandbox");
            }
        });
        self.ensure_sandbox_activity();
    }
}
