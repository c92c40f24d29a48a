//! Prometheus text exposition (format 0.0.4) of the latest sample of each watched project, the
//! app's own pool metrics, availability and firing alerts; and a minimal HTTP server for it on
//! a loopback address.
//!
//! Names follow Prometheus conventions so `promtool check metrics` accepts them: base units
//! (seconds, bytes), `_per_second` rather than `_per_s`, `_total` only on counters, one HELP and
//! TYPE per family, every family's samples together, label values escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::alerts::AlertRule;
use super::sampler::SampleReport;
use crate::conn::{CircuitState, PoolMetrics};
use crate::error::{Error, Result};

/// What is known of one project when the exporter is scraped.
pub struct ProjectView {
    pub project: String,
    pub sample: Option<SampleReport>,
    pub probe: Option<(bool, Option<f64>)>,
    pub pool: Option<PoolMetrics>,
    pub firing: Vec<AlertRule>,
    /// OTLP exports that failed in this process, when the project exports over OTLP.
    pub otlp_failures: Option<u64>,
}

/// One metric family: every sample of one name (the OTLP exporter reads these too).
#[derive(Default)]
pub(crate) struct Family {
    pub(crate) help: String,
    /// `gauge` or `counter`.
    pub(crate) kind: &'static str,
    pub(crate) samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// The metric set of some projects, by family name (`pgsteward_...`).
#[derive(Default)]
pub(crate) struct Exposition {
    pub(crate) families: BTreeMap<String, Family>,
}

impl Exposition {
    fn add(
        &mut self,
        name: &str,
        kind: &'static str,
        help: &str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        let f = self
            .families
            .entry(format!("pgsteward_{name}"))
            .or_default();
        if f.help.is_empty() {
            f.help = help.to_string();
            f.kind = kind;
        }
        f.samples.push((labels, value));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (labels, v) in &f.samples {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {}", l.join(","), number(*v));
            }
        }
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Exposition name, label key and scale of a stored metric.
fn describe(metric: &str) -> (String, &'static str, f64) {
    let label_key = match metric {
        "connections" => "state",
        "replication_lag_seconds" | "replication_lag_bytes" => "standby",
        "slot_retained_bytes" => "slot",
        "database_size_bytes" => "database",
        _ => "label",
    };
    let (name, scale) = if metric == "tps" {
        ("transactions_per_second".to_string(), 1.0)
    } else if let Some(base) = metric.strip_suffix("_ms") {
        (format!("{base}_seconds"), 0.001)
    } else if let Some(base) = metric.strip_suffix("_per_s") {
        (format!("{base}_per_second"), 1.0)
    } else {
        (metric.to_string(), 1.0)
    };
    (name, label_key, scale)
}

/// The text a scrape returns.
pub fn render(views: &[ProjectView]) -> String {
    collect(views).render()
}

/// The metric set of the projects; every sample carries the `project` label.
pub(crate) fn collect(views: &[ProjectView]) -> Exposition {
    let mut e = Exposition::default();
    for v in views {
        let p = || ("project", v.project.clone());
        if let Some((up, latency)) = v.probe {
            e.add(
                "up",
                "gauge",
                "1 when the last availability probe reached the server.",
                vec![p()],
                if up { 1.0 } else { 0.0 },
            );
            if let Some(ms) = latency {
                e.add(
                    "probe_latency_seconds",
                    "gauge",
                    "Time to get a session and run SELECT 1.",
                    vec![p()],
                    ms / 1000.0,
                );
            }
        }
        if let Some(s) = &v.sample {
            for m in &s.metrics {
                if m.metric == "up" || m.metric == "probe_latency_ms" {
                    continue;
                }
                let (name, key, scale) = describe(&m.metric);
                let mut labels = vec![p()];
                if !m.label.is_empty() {
                    labels.push((key, m.label.clone()));
                }
                e.add(
                    &name,
                    "gauge",
                    &format!("{} (from the latest sample).", m.metric),
                    labels,
                    m.value * scale,
                );
            }
            e.add(
                "last_sample_timestamp_seconds",
                "gauge",
                "When the latest sample was taken.",
                vec![p()],
                s.ts as f64 / 1000.0,
            );
        }
        if let Some(pm) = &v.pool {
            let g =
                |e: &mut Exposition, n: &str, h: &str, x: f64| e.add(n, "gauge", h, vec![p()], x);
            g(
                &mut e,
                "pool_in_use",
                "Sessions of pgsteward's pool lent out.",
                pm.in_use as f64,
            );
            g(
                &mut e,
                "pool_idle",
                "Idle sessions in pgsteward's pool.",
                pm.idle as f64,
            );
            g(
                &mut e,
                "pool_waiters",
                "Callers waiting for a session.",
                pm.waiters as f64,
            );
            g(
                &mut e,
                "pool_size",
                "Pool size (DATABASE_POOL_SIZE).",
                pm.size as f64,
            );
            g(
                &mut e,
                "pool_max_overflow",
                "Sessions allowed beyond the size.",
                pm.max_overflow as f64,
            );
            let c =
                |e: &mut Exposition, n: &str, h: &str, x: f64| e.add(n, "counter", h, vec![p()], x);
            c(
                &mut e,
                "pool_acquisitions_total",
                "Sessions handed out.",
                pm.acquisitions as f64,
            );
            c(
                &mut e,
                "pool_served_from_idle_total",
                "Sessions handed out without connecting.",
                pm.served_from_idle as f64,
            );
            c(
                &mut e,
                "pool_timeouts_total",
                "Callers that gave up waiting.",
                pm.timeouts as f64,
            );
            c(
                &mut e,
                "pool_connect_failures_total",
                "Failed attempts to connect.",
                pm.connect_failures as f64,
            );
            c(
                &mut e,
                "pool_wait_seconds_total",
                "Time callers spent waiting for a session.",
                pm.wait_ms_total / 1000.0,
            );
            for (state, name) in [
                (CircuitState::Closed, "closed"),
                (CircuitState::Open, "open"),
                (CircuitState::HalfOpen, "half_open"),
            ] {
                e.add(
                    "circuit_state",
                    "gauge",
                    "1 for the circuit breaker's current state.",
                    vec![p(), ("state", name.into())],
                    if pm.circuit == state { 1.0 } else { 0.0 },
                );
            }
        }
        for rule in AlertRule::ALL {
            e.add(
                "alert_firing",
                "gauge",
                "1 while the alert rule fires.",
                vec![p(), ("rule", rule.as_str().into())],
                if v.firing.contains(&rule) { 1.0 } else { 0.0 },
            );
        }
        if let Some(n) = v.otlp_failures {
            e.add(
                "otlp_export_failures_total",
                "counter",
                "OTLP exports that failed (after their retries) since pgsteward started.",
                vec![p()],
                n as f64,
            );
        }
    }
    e
}

/// Refuse anything but a loopback address: the exposition names databases and queries.
pub fn check_loopback(addr: &SocketAddr) -> Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "the exporter listens on loopback addresses only (127.0.0.1 or ::1), not {addr}"
        )))
    }
}

/// Answer `GET /metrics` with `scrape()` until the listener fails; other paths get 404.
pub async fn serve<F>(listener: TcpListener, scrape: Arc<F>) -> Result<()>
where
    F: Fn() -> String + Send + Sync + 'static,
{
    loop {
        let (mut sock, _) = listener
            .accept()
            .await
            .map_err(|e| Error::io("accepting a scrape", e))?;
        let scrape = scrape.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    sock.read(&mut buf[n..]),
                )
                .await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or("");
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, ctype, body) =
                if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
                    (
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        scrape(),
                    )
                } else {
                    (
                        "404 Not Found",
                        "text/plain; charset=utf-8",
                        "pgsteward serves /metrics only\n".to_string(),
                    )
                };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::sampler::MetricValue;

    #[test]
    fn names_units_and_escaping() {
        let sample = SampleReport {
            project: "p".into(),
            ts: 1_700_000_000_000,
            sampled_at: String::new(),
            server_version_num: 150000,
            collectors_ok: vec![],
            failures: vec![],
            metrics: vec![
                MetricValue {
                    metric: "tps".into(),
                    label: String::new(),
                    value: 12.5,
                },
                MetricValue {
                    metric: "statement_mean_ms".into(),
                    label: String::new(),
                    value: 250.0,
                },
                MetricValue {
                    metric: "connections".into(),
                    label: "active".into(),
                    value: 3.0,
                },
                MetricValue {
                    metric: "database_size_bytes".into(),
                    label: "we\"ird\\db\n".into(),
                    value: 1.0,
                },
            ],
            deltas: vec![],
            statements_recorded: 0,
            events: vec![],
            notes: vec![],
            alerts: vec![],
        };
        let text = render(&[ProjectView {
            project: "p".into(),
            sample: Some(sample),
            probe: Some((true, Some(4.0))),
            pool: None,
            firing: vec![AlertRule::SlowQueries],
            otlp_failures: Some(2),
        }]);
        assert!(
            text.contains("pgsteward_transactions_per_second{project=\"p\"} 12.5\n"),
            "{text}"
        );
        assert!(text.contains("pgsteward_statement_mean_seconds{project=\"p\"} 0.25\n"));
        assert!(text.contains("pgsteward_connections{project=\"p\",state=\"active\"} 3\n"));
        assert!(text.contains("database=\"we\\\"ird\\\\db\\n\""));
        assert!(text.contains("pgsteward_alert_firing{project=\"p\",rule=\"slow_queries\"} 1\n"));
        assert_eq!(
            text.matches("# TYPE pgsteward_alert_firing gauge").count(),
            1
        );
        assert!(text.contains("pgsteward_otlp_export_failures_total{project=\"p\"} 2\n"));
        assert!(check_loopback(&"0.0.0.0:9187".parse().unwrap()).is_err());
        assert!(check_loopback(&"[::1]:9187".parse().unwrap()).is_ok());
    }
}
