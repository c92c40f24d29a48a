//! OTLP export of a project's metrics: its setting (endpoint, optional header whose value lives
//! in the keyring), `metrics push` (sample once, export once, report), and the export that
//! follows each sample of the background samplers.
//!
//! A background export never holds up sampling: it runs in its own task, bounded by the retry
//! policy, and a project has at most one in flight (a sample that finds one running skips its
//! export). Failures are counted and logged once per streak of failures.

use serde::Serialize;
use ts_rs::TS;

use super::Steward;
use crate::error::{Error, ErrorCode, Result};
use crate::monitor::otlp::{self, OtlpSettings, RetryPolicy};
use crate::monitor::SampleReport;
use crate::secrets::SecretKind;

/// Export counters of one project in this process.
#[derive(Debug, Clone, Default)]
pub(crate) struct OtlpState {
    exported: u64,
    failures: u64,
    /// Failures since the last export that went through.
    streak: u64,
    /// Samples whose export was skipped because the previous one was still running.
    skipped: u64,
    in_flight: bool,
    last_error: Option<String>,
}

/// What the CLI and the app show of a project's OTLP export. Holds no secret.
#[derive(Debug, Clone, Serialize, TS)]
pub struct OtlpInfo {
    pub project: String,
    pub settings: Option<OtlpSettings>,
    /// The URL exports are posted to.
    pub url: Option<String>,
    /// A header value is in the keyring.
    pub has_header_value: bool,
    /// Exports that went through in this process.
    #[ts(type = "number")]
    pub exported: u64,
    /// Exports that failed after their retries, in this process.
    #[ts(type = "number")]
    pub failures: u64,
    pub last_error: Option<String>,
}

/// What `metrics push` did.
#[derive(Debug, Clone, Serialize, TS)]
pub struct PushReport {
    pub project: String,
    pub url: String,
    /// When the sample was taken (ms since the epoch).
    #[ts(type = "number")]
    pub sample_ts: i64,
    /// Metrics and data points sent.
    pub metrics: usize,
    pub data_points: usize,
    pub attempts: u32,
    /// Data points the collector said it rejected.
    #[ts(type = "number")]
    pub rejected: i64,
}

/// One export, ready to go to its collector.
struct Export {
    url: url::Url,
    header: Option<(String, zeroize::Zeroizing<String>)>,
    request: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
}

impl Steward {
    /// Set (or with `None`, remove) where the project's metrics are exported over OTLP.
    /// `header_value` is kept in the keyring (`None` keeps a stored one while the header name
    /// stays set).
    pub fn set_otlp(
        &self,
        name: &str,
        settings: Option<OtlpSettings>,
        header_value: Option<&str>,
    ) -> Result<OtlpInfo> {
        let mut project = self.store.get(name)?;
        match &settings {
            Some(s) => {
                s.validate()?;
                match (&s.header_name, header_value) {
                    (None, Some(_)) => {
                        return Err(Error::invalid_input(
                            "a header value needs a header name (--header NAME)",
                        ))
                    }
                    (None, None) => self.secrets.delete(name, SecretKind::OtlpHeader)?,
                    (Some(_), Some(v)) => self.secrets.set(name, SecretKind::OtlpHeader, v)?,
                    (Some(h), None) => {
                        if self.secrets.get(name, SecretKind::OtlpHeader)?.is_none() {
                            return Err(Error::new(
                                ErrorCode::SecretMissing,
                                format!("the {h} header needs its value (--header-value-stdin)"),
                            ));
                        }
                    }
                }
            }
            None => self.secrets.delete(name, SecretKind::OtlpHeader)?,
        }
        project.otlp = settings;
        self.store.replace(name, project)?;
        self.otlp_info(name)
    }

    /// Set (or with `None`, remove) only the endpoint, keeping a header set before: what the
    /// app's form changes.
    pub fn set_otlp_endpoint(&self, name: &str, endpoint: Option<String>) -> Result<OtlpInfo> {
        let header_name = self.store.get(name)?.otlp.and_then(|s| s.header_name);
        let settings = endpoint.map(|endpoint| OtlpSettings {
            endpoint,
            header_name,
        });
        self.set_otlp(name, settings, None)
    }

    pub fn otlp_info(&self, name: &str) -> Result<OtlpInfo> {
        let project = self.store.get(name)?;
        let state = self
            .otlp
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default();
        let has_header_value = match project.otlp.as_ref().and_then(|s| s.header_name.as_ref()) {
            Some(_) => self.secrets.get(name, SecretKind::OtlpHeader)?.is_some(),
            None => false,
        };
        Ok(OtlpInfo {
            project: name.to_string(),
            url: project
                .otlp
                .as_ref()
                .and_then(|s| s.metrics_url().ok())
                .map(|u| u.to_string()),
            settings: project.otlp,
            has_header_value,
            exported: state.exported,
            failures: state.failures,
            last_error: state.last_error,
        })
    }

    /// OTLP export failures of the project in this process, when it exports over OTLP.
    pub(crate) fn otlp_failures(&self, name: &str) -> Option<u64> {
        let configured = self.store.get(name).ok()?.otlp.is_some();
        configured.then(|| {
            self.otlp
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |s| s.failures)
        })
    }

    /// The export of the project's current metric set, or `None` when it exports nothing.
    fn prepare_export(&self, name: &str) -> Result<Option<Export>> {
        let Some(settings) = self.store.get(name)?.otlp else {
            return Ok(None);
        };
        let url = settings.metrics_url()?;
        let header = match &settings.header_name {
            Some(h) => {
                let v = self
                    .secrets
                    .get(name, SecretKind::OtlpHeader)?
                    .ok_or_else(|| {
                        Error::new(
                            ErrorCode::SecretMissing,
                            format!(
                                "the value of the OTLP {h} header is not in the keyring; set it again with `pgsteward project otlp {name} ... --header-value-stdin`"
                            ),
                        )
                    })?;
                Some((h.clone(), v))
            }
            None => None,
        };
        let view = self.project_view(name);
        let request = otlp::request(
            std::slice::from_ref(&view),
            chrono::Utc::now().timestamp_millis(),
            self.started_ms,
        );
        Ok(Some(Export {
            url,
            header,
            request,
        }))
    }

    /// Sample the project once and export the result once, waiting for the collector.
    pub async fn metrics_push(&self, name: &str) -> Result<PushReport> {
        if self.store.get(name)?.otlp.is_none() {
            return Err(Error::invalid_input(format!(
                "{name} has no OTLP endpoint; set one with `pgsteward project otlp {name} --endpoint URL`"
            )));
        }
        // A server that is down is still worth exporting (pgsteward_up 0), then reported.
        let sampled = self.sample_now(name).await;
        let export = self.prepare_export(name)?.expect("checked above");
        let policy = RetryPolicy::default();
        let client = otlp::client(&policy)?;
        let sent = otlp::send(
            &client,
            &export.url,
            export
                .header
                .as_ref()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            &export.request,
            &policy,
        )
        .await;
        note_outcome(&self.otlp, name, false, false, sent.as_ref().map(|_| ()));
        let report = sampled?;
        let sent = sent?;
        Ok(PushReport {
            project: name.to_string(),
            url: export.url.to_string(),
            sample_ts: report.ts,
            metrics: export
                .request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .map(|s| s.metrics.len())
                .sum(),
            data_points: otlp::data_points(&export.request),
            attempts: sent.attempts,
            rejected: sent.rejected,
        })
    }

    /// A history sample, then (when configured) its OTLP export in the background: what the
    /// samplers of `history run`, `metrics serve` and the app do each pass.
    pub async fn sample_and_export(&self, name: &str) -> Result<SampleReport> {
        let sampled = self.sample_now(name).await;
        self.export_in_background(name);
        sampled
    }

    fn otlp_begin(&self, name: &str) -> bool {
        let mut states = self
            .otlp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = states.entry(name.to_string()).or_default();
        if s.in_flight {
            s.skipped += 1;
            return false;
        }
        s.in_flight = true;
        true
    }

    fn export_in_background(&self, name: &str) {
        let export = match self.prepare_export(name) {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                note_outcome(&self.otlp, name, false, true, Err(&e));
                return;
            }
        };
        if !self.otlp_begin(name) {
            tracing::debug!(
                project = name,
                "the previous OTLP export is still running; this sample is not exported"
            );
            return;
        }
        let states = self.otlp.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let policy = RetryPolicy::default();
            let sent = match otlp::client(&policy) {
                Ok(client) => otlp::send(
                    &client,
                    &export.url,
                    export
                        .header
                        .as_ref()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                    &export.request,
                    &policy,
                )
                .await
                .map(|_| ()),
                Err(e) => Err(e),
            };
            note_outcome(&states, &name, true, true, sent.as_ref().map(|_| ()));
        });
    }
}

/// Count an export's outcome (`sent`: it was the one in flight); with `log`, log the first
/// failure of a streak and the recovery after one (`metrics push` reports its error itself).
fn note_outcome(
    states: &std::sync::Mutex<std::collections::HashMap<String, OtlpState>>,
    name: &str,
    sent: bool,
    log: bool,
    outcome: std::result::Result<(), &Error>,
) {
    let mut states = states
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = states.entry(name.to_string()).or_default();
    if sent {
        s.in_flight = false;
    }
    match outcome {
        Ok(()) => {
            if s.streak > 0 && log {
                tracing::info!(project = name, failed = s.streak, "OTLP export works again");
            }
            s.streak = 0;
            s.exported += 1;
            s.last_error = None;
        }
        Err(e) => {
            if s.streak == 0 && log {
                tracing::warn!(
                    project = name,
                    code = e.code.as_str(),
                    "OTLP export failed (further failures are counted, not logged, until one succeeds): {}",
                    e.message
                );
            }
            s.streak += 1;
            s.failures += 1;
            s.last_error = Some(e.message.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_per_streak_and_in_flight_is_kept() {
        let states = std::sync::Mutex::new(std::collections::HashMap::new());
        let e = Error::new(ErrorCode::OtlpUnreachable, "refused");
        states.lock().unwrap().insert(
            "p".to_string(),
            OtlpState {
                in_flight: true,
                ..Default::default()
            },
        );
        // A failure before sending leaves the export in flight alone.
        note_outcome(&states, "p", false, true, Err(&e));
        assert!(states.lock().unwrap()["p"].in_flight);
        note_outcome(&states, "p", true, true, Err(&e));
        note_outcome(&states, "p", true, true, Err(&e));
        let s = states.lock().unwrap()["p"].clone();
        assert_eq!((s.failures, s.streak, s.in_flight), (3, 3, false));
        note_outcome(&states, "p", true, true, Ok(()));
        let s = states.lock().unwrap()["p"].clone();
        assert_eq!((s.failures, s.streak, s.exported), (3, 0, 1));
        assert!(s.last_error.is_none());
    }
}
