//! The history commands: take samples (once or in a loop), show stored series, compact, and the
//! top queries of a time range.

use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use pgsteward::monitor::{HistoryRange, Metric, QuerySort, SampleReport};
use pgsteward::{Error, Steward};

use crate::output::{human_bytes, one_line, out};

#[derive(Subcommand)]
pub enum HistoryCmd {
    /// Take one sample of the project's server now and store it in its history.
    Sample { name: String },
    /// Show stored series over a time range.
    Show {
        name: String,
        /// 15m, 1h, 24h, 7d or 30d.
        #[arg(long, default_value = "1h")]
        range: String,
        /// Metric to show (repeatable); all when omitted. E.g. tps, connections, cache_hit_ratio.
        #[arg(long = "metric")]
        metrics: Vec<String>,
    },
    /// Sample at an interval until Ctrl-C.
    Run {
        name: String,
        /// Time between samples: 5s, 1m, 500ms (plain numbers are seconds).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Roll up and apply retention to the history of one project, or of all projects.
    Compact { name: Option<String> },
    /// Slow-query events recorded over a time range.
    Events {
        name: String,
        #[arg(long, default_value = "24h")]
        range: String,
    },
}

/// "5s", "1m", "250ms", "2h" or a number of seconds.
pub fn parse_interval(s: &str) -> Result<Duration, Error> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::invalid_input(format!("\"{s}\" is not an interval (e.g. 5s, 1m)")))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(Error::invalid_input(format!(
                "\"{s}\": use ms, s, m or h as the unit"
            )))
        }
    };
    if secs.is_nan() || secs < 0.1 || !secs.is_finite() {
        return Err(Error::invalid_input(
            "The interval must be at least 100 ms.",
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn print_sample(r: &SampleReport) {
    println!(
        "sampled {} at {}: {} collector(s) ok, {} failed",
        r.project,
        r.sampled_at,
        r.collectors_ok.len(),
        r.failures.len()
    );
    for f in &r.failures {
        println!("  failed {}: [{}] {}", f.collector, f.code, f.message);
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    for m in ["tps", "commits_per_s", "cache_hit_ratio", "wal_bytes_per_s"] {
        if let Some(v) = r.metric(m, "") {
            println!("  {m:<22} {v:.2}");
        }
    }
    if let Some(v) = r.metric("connections", "total") {
        println!("  {:<22} {v:.0}", "connections");
    }
    if r.deltas.is_empty() {
        println!("  (first sample: rates appear from the next one)");
    }
    if r.statements_recorded > 0 {
        println!(
            "  {} statement(s) ran since the previous sample",
            r.statements_recorded
        );
    }
    for e in &r.events {
        println!(
            "  slow: {} {:.0} ms  {}",
            e.kind,
            e.duration_ms,
            one_line(Some(&e.query), 80)
        );
    }
}

fn fmt_value(unit: &str, v: f64) -> String {
    match unit {
        "B" | "B/s" => format!(
            "{}{}",
            human_bytes(v),
            if unit == "B/s" { "/s" } else { "" }
        ),
        "%" => format!("{:.2} %", v * 100.0),
        _ => format!("{v:.2} {unit}"),
    }
}

pub async fn run(st: &Arc<Steward>, cmd: HistoryCmd, json: bool) -> Result<(), Error> {
    match cmd {
        HistoryCmd::Sample { name } => {
            let r = st.sample_now(&name).await?;
            out(json, &r, print_sample);
        }
        HistoryCmd::Show {
            name,
            range,
            metrics,
        } => {
            let range = HistoryRange::parse(&range)?;
            let metrics = if metrics.is_empty() {
                Metric::ALL.to_vec()
            } else {
                metrics
                    .iter()
                    .map(|m| Metric::parse(m))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let h = st.history_series(&name, &metrics, range).await?;
            out(json, &h, |h| {
                println!("{name}: {:?} resolution", h.resolution);
                if h.series.is_empty() {
                    println!("no samples in this range yet: run `pgsteward history sample {name}` or `history run`");
                }
                for s in &h.series {
                    let last = s.points.last().map(|p| p.value);
                    let min = s.points.iter().map(|p| p.min).fold(f64::INFINITY, f64::min);
                    let max = s
                        .points
                        .iter()
                        .map(|p| p.max)
                        .fold(f64::NEG_INFINITY, f64::max);
                    let label = if s.label.is_empty() {
                        s.metric.as_str().to_string()
                    } else {
                        format!("{}[{}]", s.metric.as_str(), s.label)
                    };
                    println!(
                        "{label:<40} last {:<16} min {:<16} max {:<16} ({} points)",
                        last.map(|v| fmt_value(&s.unit, v)).unwrap_or("-".into()),
                        fmt_value(&s.unit, min),
                        fmt_value(&s.unit, max),
                        s.points.len()
                    );
                }
            });
        }
        HistoryCmd::Run { name, interval } => {
            let every = parse_interval(&interval)?;
            st.get(&name)?;
            let cb: pgsteward::monitor::sampler::OnSample = Arc::new(move |r| match r {
                Ok(r) if json => println!("{}", serde_json::to_string(r).expect("serializable")),
                Ok(r) => print_sample(r),
                Err(e) if json => println!("{}", serde_json::json!({ "error": e })),
                Err(e) => eprintln!("error[{}]: {}", e.code, e.message),
            });
            // Listen for Ctrl-C before the first sample (polling the future registers it).
            let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
            tokio::select! {
                biased;
                r = &mut ctrl_c => {
                    r.map_err(|e| Error::io("waiting for Ctrl-C", e))?;
                    return Ok(());
                }
                _ = std::future::ready(()) => {}
            }
            let handle = st.start_sampler_with(&name, every, Some(cb))?;
            if !json {
                eprintln!("sampling {name} every {interval}; Ctrl-C to stop");
            }
            ctrl_c
                .await
                .map_err(|e| Error::io("waiting for Ctrl-C", e))?;
            let state = handle.state();
            handle.stop().await;
            if !json {
                eprintln!(
                    "stopped after {} sample(s), {} error(s)",
                    state.samples, state.errors
                );
            }
        }
        HistoryCmd::Compact { name } => {
            let names = match name {
                Some(n) => vec![n],
                None => st.list()?.into_iter().map(|p| p.name).collect(),
            };
            let mut reports = Vec::new();
            for n in names {
                reports.push(st.compact_history(&n).await?);
            }
            out(json, &reports, |rs| {
                for r in rs {
                    println!(
                        "{}: {} minute and {} hour roll-up rows written; deleted {} raw, {} minute, {} hour rows, {} statement rows, {} events, {} maintenance runs",
                        r.project,
                        r.minute_rows_written,
                        r.hour_rows_written,
                        r.raw_rows_deleted,
                        r.minute_rows_deleted,
                        r.hour_rows_deleted,
                        r.statement_rows_deleted,
                        r.events_deleted,
                        r.maintenance_runs_deleted
                    );
                }
            });
        }
        HistoryCmd::Events { name, range } => {
            let ev = st
                .slow_query_events(&name, HistoryRange::parse(&range)?)
                .await?;
            out(json, &ev, |ev| {
                if ev.is_empty() {
                    println!("no slow queries recorded in this range");
                }
                for e in ev {
                    let t = chrono::DateTime::from_timestamp_millis(e.ts)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default();
                    println!(
                        "{t}  {:<15} {:>10.0} ms  {}",
                        e.kind,
                        e.duration_ms,
                        one_line(Some(&e.query), 90)
                    );
                }
            });
        }
    }
    Ok(())
}

/// `pgsteward queries`: top statements of a time range from the stored deltas.
pub async fn queries(
    st: &Steward,
    name: &str,
    range: &str,
    sort: &str,
    limit: u32,
    json: bool,
) -> Result<(), Error> {
    let r = st
        .top_queries(
            name,
            HistoryRange::parse(range)?,
            QuerySort::parse(sort)?,
            limit,
        )
        .await?;
    out(json, &r, |r| {
        if let Some(how) = &r.enable_instructions {
            println!("{how}");
        }
        if r.queries.is_empty() {
            println!("no statements recorded in this range (pg_stat_statements deltas come from samples: run `pgsteward history run {name}`)");
            return;
        }
        println!(
            "{:>10} {:>12} {:>10} {:>10} {:>10} {:>10}  QUERY",
            "CALLS", "TOTAL ms", "MEAN ms", "ROWS", "READ", "TEMP"
        );
        for q in &r.queries {
            println!(
                "{:>10.0} {:>12.1} {:>10.2} {:>10.0} {:>10.0} {:>10.0}  {}",
                q.calls,
                q.total_ms,
                q.mean_ms,
                q.rows,
                q.shared_blks_read,
                q.temp_blks_written,
                one_line(Some(&q.query), 80)
            );
        }
        println!("(mean = time / calls over the range, not a percentile)");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_interval("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5x").is_err());
    }
}
