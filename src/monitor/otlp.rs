//! OpenTelemetry metrics over OTLP/HTTP (protobuf) to a collector the user configured per project.
//!
//! The metric set is the Prometheus exposition's ([`super::exporter`]), so both exporters always
//! agree: the same names (`pgsteward_...`), gauges as OTLP gauges, `_total` counters as cumulative
//! monotonic sums, units from the names' suffixes. Each project is one resource with
//! `service.name = pgsteward` and `pgsteward.project = NAME`; the other labels become data point
//! attributes.
//!
//! Only the generated protobuf messages of `opentelemetry-proto` are used, not the SDK's
//! pipeline: pgsteward exports samples it already took, not instruments it records into, and the
//! HTTP client is the one the S3 storage already brings in. A send is bounded: a timeout per
//! attempt and a few retries with backoff on connection errors, 429 and 5xx answers.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::exporter::{self, ProjectView};
use crate::error::{Error, ErrorCode, Result};

/// The resource attribute naming the project.
pub const PROJECT_ATTRIBUTE: &str = "pgsteward.project";

/// Where a project's metrics go, as saved with the project. A header value (an auth token) is
/// kept in the OS keyring, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct OtlpSettings {
    /// The collector's OTLP/HTTP base URL, e.g. `http://collector:4318`; `/v1/metrics` is
    /// appended unless the URL already ends with it.
    pub endpoint: String,
    /// A header sent with every export (e.g. `Authorization`); its value is in the keyring.
    #[serde(default)]
    pub header_name: Option<String>,
}

impl OtlpSettings {
    /// The URL exports are posted to.
    pub fn metrics_url(&self) -> Result<url::Url> {
        let mut u = url::Url::parse(self.endpoint.trim()).map_err(|e| {
            Error::invalid_input(format!(
                "OTLP endpoint {:?} is not a URL ({e}); use e.g. http://collector:4318",
                self.endpoint
            ))
        })?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(Error::invalid_input(format!(
                "OTLP endpoint {:?} must be an http:// or https:// URL with a host",
                self.endpoint
            )));
        }
        if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
            return Err(Error::invalid_input(
                "the OTLP endpoint takes no query, fragment or credentials; put a token in a header",
            ));
        }
        if !u.path().ends_with("/v1/metrics") {
            let path = format!("{}/v1/metrics", u.path().trim_end_matches('/'));
            u.set_path(&path);
        }
        Ok(u)
    }

    /// Check the settings before they are saved.
    pub fn validate(&self) -> Result<()> {
        let u = self.metrics_url()?;
        if let Some(h) = &self.header_name {
            reqwest::header::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                Error::invalid_input(format!("{h:?} is not a valid HTTP header name"))
            })?;
            let loopback = match u.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if u.scheme() == "http" && !loopback {
                return Err(Error::invalid_input(
                    "a header value (a token) would cross the network in clear text: use an https:// endpoint",
                ));
            }
        }
        Ok(())
    }
}

/// OTLP unit of a metric, from its name's suffix (UCUM, as OpenTelemetry expects).
fn unit(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_per_second") {
        "1/s"
    } else if base.ends_with("_seconds") {
        "s"
    } else if base.ends_with("_bytes") {
        "By"
    } else {
        "1"
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// The export request of some projects' metric sets at `now_ms`; counters count from
/// `start_ms` (when this process started).
pub fn request(views: &[ProjectView], now_ms: i64, start_ms: i64) -> ExportMetricsServiceRequest {
    let mut resource_metrics = Vec::new();
    for v in views {
        let set = exporter::collect(std::slice::from_ref(v));
        let metrics = set
            .families
            .iter()
            .map(|(name, f)| {
                let counter = f.kind == "counter";
                let data_points = f
                    .samples
                    .iter()
                    .map(|(labels, value)| NumberDataPoint {
                        attributes: labels
                            .iter()
                            .filter(|(k, _)| *k != "project")
                            .map(|(k, v)| string_kv(k, v))
                            .collect(),
                        start_time_unix_nano: if counter { ns(start_ms) } else { 0 },
                        time_unix_nano: ns(now_ms),
                        value: Some(number_data_point::Value::AsDouble(*value)),
                        ..Default::default()
                    })
                    .collect();
                let data = if counter {
                    metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })
                } else {
                    metric::Data::Gauge(Gauge { data_points })
                };
                Metric {
                    name: name.clone(),
                    description: f.help.clone(),
                    unit: unit(name).to_string(),
                    data: Some(data),
                    ..Default::default()
                }
            })
            .collect();
        resource_metrics.push(ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name", "pgsteward"),
                    string_kv("service.version", env!("CARGO_PKG_VERSION")),
                    string_kv(PROJECT_ATTRIBUTE, &v.project),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "pgsteward".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest { resource_metrics }
}

/// Data points in a request.
pub fn data_points(req: &ExportMetricsServiceRequest) -> usize {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            _ => 0,
        })
        .sum()
}

/// How hard a send tries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub first_backoff: Duration,
    pub connect_timeout: Duration,
    /// Limit of one attempt, connection included.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    /// At most 3 attempts of 5 s with 0.5 s and 1 s between them: an export never takes more
    /// than about 17 s, well under any sampling interval worth having.
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

/// The HTTP client exports go through.
pub fn client(policy: &RetryPolicy) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(policy.connect_timeout)
        .timeout(policy.attempt_timeout)
        .user_agent(concat!("pgsteward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::new(ErrorCode::Internal, format!("HTTP client: {e}")))
}

/// What a successful send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub attempts: u32,
    /// Data points the collector said it rejected (a partial success).
    pub rejected: i64,
}

/// Post the request; retry connection failures, timeouts, 429 and 5xx answers.
pub async fn send(
    client: &reqwest::Client,
    url: &url::Url,
    header: Option<(&str, &str)>,
    req: &ExportMetricsServiceRequest,
    policy: &RetryPolicy,
) -> Result<Sent> {
    let body = bytes::Bytes::from(req.encode_to_vec());
    let mut backoff = policy.first_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut rb = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body.clone());
        if let Some((k, v)) = header {
            rb = rb.header(k, v);
        }
        let err = match rb.send().await {
            Ok(resp) if resp.status().is_success() => {
                let bytes = resp.bytes().await.unwrap_or_default();
                let rejected = ExportMetricsServiceResponse::decode(bytes)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| p.rejected_data_points)
                    .unwrap_or(0);
                return Ok(Sent {
                    attempts: attempt,
                    rejected,
                });
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let text: String = text.chars().take(200).collect();
                let e = Error::new(
                    ErrorCode::OtlpRejected,
                    format!("the OTLP endpoint {url} answered {status}: {}", text.trim()),
                );
                if status.as_u16() != 429 && !status.is_server_error() {
                    return Err(e);
                }
                e
            }
            Err(e) => Error::new(
                ErrorCode::OtlpUnreachable,
                format!(
                    "the OTLP endpoint {url} could not be reached ({}): {}",
                    if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "request failed"
                    },
                    error_chain(&e)
                ),
            ),
        };
        if attempt >= policy.attempts.max(1) {
            return Err(Error::new(
                err.code,
                format!("{} (after {attempt} attempts)", err.message),
            ));
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// The innermost cause ("Connection refused (os error 111)"): the outer layers only repeat the
/// URL, which the message already names.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        last = c.to_string();
        cur = c.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_units_and_points() {
        let s = |e: &str, h: Option<&str>| OtlpSettings {
            endpoint: e.into(),
            header_name: h.map(String::from),
        };
        assert_eq!(
            s("http://c:4318", None).metrics_url().unwrap().as_str(),
            "http://c:4318/v1/metrics"
        );
        assert_eq!(
            s("https://c/otlp/", None).metrics_url().unwrap().as_str(),
            "https://c/otlp/v1/metrics"
        );
        assert_eq!(
            s("http://c:4318/v1/metrics", None)
                .metrics_url()
                .unwrap()
                .as_str(),
            "http://c:4318/v1/metrics"
        );
        assert!(s("c:4318", None).validate().is_err());
        assert!(s("ftp://c", None).validate().is_err());
        assert!(s("http://u:p@c", None).validate().is_err());
        assert!(s("http://c:4318", Some("Authorization"))
            .validate()
            .is_err());
        assert!(s("http://127.0.0.1:4318", Some("Authorization"))
            .validate()
            .is_ok());
        assert!(s("https://c", Some("bad header")).validate().is_err());
        assert_eq!(unit("pgsteward_pool_wait_seconds_total"), "s");
        assert_eq!(unit("pgsteward_transactions_per_second"), "1/s");
        assert_eq!(unit("pgsteward_database_size_bytes"), "By");
        assert_eq!(unit("pgsteward_pool_in_use"), "1");

        let req = request(
            &[ProjectView {
                project: "p".into(),
                sample: None,
                probe: Some((true, Some(2.0))),
                pool: None,
                firing: vec![],
                otlp_failures: Some(0),
            }],
            1_000,
            500,
        );
        let rm = &req.resource_metrics[0];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        assert!(attrs.contains(&string_kv(PROJECT_ATTRIBUTE, "p")));
        assert!(attrs.contains(&string_kv("service.name", "pgsteward")));
        let metrics = &rm.scope_metrics[0].metrics;
        let up = metrics.iter().find(|m| m.name == "pgsteward_up").unwrap();
        let Some(metric::Data::Gauge(g)) = &up.data else {
            panic!("up is a gauge")
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(1.0))
        );
        assert_eq!(g.data_points[0].time_unix_nano, 1_000_000_000);
        let failures = metrics
            .iter()
            .find(|m| m.name == "pgsteward_otlp_export_failures_total")
            .unwrap();
        let Some(metric::Data::Sum(sum)) = &failures.data else {
            panic!("counters are sums")
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points[0].start_time_unix_nano, 500_000_000);
        // One point per rule of alert_firing, with the rule as an attribute.
        let firing = metrics
            .iter()
            .find(|m| m.name == "pgsteward_alert_firing")
            .unwrap();
        assert!(data_points(&req) > 3);
        let Some(metric::Data::Gauge(g)) = &firing.data else {
            panic!()
        };
        assert_eq!(g.data_points[0].attributes[0].key, "rule");
    }
}
