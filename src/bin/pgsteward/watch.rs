//! `pgsteward metrics serve|push`, `pgsteward project otlp`, `pgsteward alerts` and
//! `pgsteward availability`: watching projects over time from a server or a cron job.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use pgsteward::monitor::alerts::AlertRule;
use pgsteward::monitor::exporter::{self, ProjectView};
use pgsteward::monitor::otlp::OtlpSettings;
use pgsteward::steward::OtlpInfo;
use pgsteward::{Error, Steward};

use crate::output::{out, read_secret};

#[derive(Subcommand)]
pub enum MetricsCmd {
    /// Sample the projects in the background and serve their metrics for Prometheus on a
    /// loopback address, until interrupted.
    Serve {
        /// Projects to watch (default: all).
        projects: Vec<String>,
        #[arg(long, default_value = "127.0.0.1:9187")]
        listen: String,
        /// Seconds between samples.
        #[arg(long, default_value_t = 15)]
        interval: u64,
    },
    /// Sample a project once and export the sample over OTLP once (set the endpoint with
    /// `project otlp`); fails when the collector cannot be reached, the sample is kept anyway.
    Push { name: String },
}

/// `project otlp` options.
#[derive(Args)]
pub struct OtlpArgs {
    /// The collector's OTLP/HTTP base URL (e.g. http://127.0.0.1:4318); /v1/metrics is appended.
    #[arg(long, conflicts_with = "none")]
    endpoint: Option<String>,
    /// Stop exporting.
    #[arg(long)]
    none: bool,
    /// A header sent with every export (e.g. Authorization).
    #[arg(long, requires = "endpoint")]
    header: Option<String>,
    /// Read the header's value (e.g. "Bearer TOKEN") from standard input; it goes to the OS
    /// keyring. Without it, a value stored before is kept.
    #[arg(long, requires = "header")]
    header_value_stdin: bool,
}

pub fn otlp(st: &Steward, json: bool, name: &str, a: &OtlpArgs) -> Result<(), Error> {
    let info = if a.none {
        st.set_otlp(name, None, None)?
    } else if let Some(endpoint) = &a.endpoint {
        let value = if a.header_value_stdin {
            Some(read_secret(true, "header value")?)
        } else {
            None
        };
        st.set_otlp(
            name,
            Some(OtlpSettings {
                endpoint: endpoint.clone(),
                header_name: a.header.clone(),
            }),
            value.as_deref().map(|v| v.as_str()),
        )?
    } else {
        st.otlp_info(name)?
    };
    out(json, &info, print_otlp);
    Ok(())
}

fn print_otlp(i: &OtlpInfo) {
    match (&i.settings, &i.url) {
        (Some(s), Some(url)) => {
            println!("{} exports its metrics over OTLP to {url}", i.project);
            if let Some(h) = &s.header_name {
                println!(
                    "  header {h}: {}",
                    if i.has_header_value {
                        "value in the OS keyring"
                    } else {
                        "value missing"
                    }
                );
            }
        }
        _ => println!("{} exports no metrics over OTLP", i.project),
    }
}

#[derive(Args)]
pub struct AlertsArgs {
    name: String,
    /// Change a rule's threshold: RULE=VALUE (e.g. slow_queries=20, cache_hit_ratio=0.95).
    #[arg(long = "set", value_name = "RULE=VALUE")]
    set: Vec<String>,
    #[arg(long, value_name = "RULE")]
    enable: Vec<String>,
    #[arg(long, value_name = "RULE")]
    disable: Vec<String>,
}

pub async fn metrics(st: &Arc<Steward>, json: bool, cmd: MetricsCmd) -> Result<(), Error> {
    let (projects, listen, interval) = match cmd {
        MetricsCmd::Serve {
            projects,
            listen,
            interval,
        } => (projects, listen, interval),
        MetricsCmd::Push { name } => {
            let r = st.metrics_push(&name).await?;
            out(json, &r, |r| {
                println!(
                    "exported {} metrics ({} data points) of {} to {} in {} attempt(s){}",
                    r.metrics,
                    r.data_points,
                    r.project,
                    r.url,
                    r.attempts,
                    if r.rejected > 0 {
                        format!("; the collector rejected {} data points", r.rejected)
                    } else {
                        String::new()
                    }
                );
            });
            return Ok(());
        }
    };
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| Error::invalid_input(format!("--listen {listen:?} is not an address:port")))?;
    exporter::check_loopback(&addr)?;
    let projects = if projects.is_empty() {
        st.list()?.into_iter().map(|p| p.name).collect()
    } else {
        for p in &projects {
            st.get(p)?;
        }
        projects
    };
    if interval == 0 {
        return Err(Error::invalid_input("--interval must be at least 1 second"));
    }
    let _samplers = projects
        .iter()
        .map(|p| st.start_sampler(p, Duration::from_secs(interval)))
        .collect::<Result<Vec<_>, _>>()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(&format!("listening on {addr}"), e))?;
    eprintln!(
        "serving metrics of {} project(s) on http://{}/metrics (Ctrl-C stops)",
        projects.len(),
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(listen)
    );
    let st2 = st.clone();
    let scrape = Arc::new(move || {
        let views: Vec<ProjectView> = projects.iter().map(|p| st2.project_view(p)).collect();
        exporter::render(&views)
    });
    tokio::select! {
        r = exporter::serve(listener, scrape) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

pub async fn alerts(st: &Steward, json: bool, a: AlertsArgs) -> Result<(), Error> {
    for s in &a.set {
        let (rule, value) = s
            .split_once('=')
            .ok_or_else(|| Error::invalid_input(format!("--set {s:?}: use RULE=VALUE")))?;
        let v: f64 = value
            .parse()
            .map_err(|_| Error::invalid_input(format!("--set {s:?}: {value:?} is not a number")))?;
        st.alerts_configure(&a.name, AlertRule::parse(rule)?, Some(v), None)?;
    }
    for r in &a.enable {
        st.alerts_configure(&a.name, AlertRule::parse(r)?, None, Some(true))?;
    }
    for r in &a.disable {
        st.alerts_configure(&a.name, AlertRule::parse(r)?, None, Some(false))?;
    }
    let report = st.alerts(&a.name).await?;
    out(json, &report, |r| {
        println!("rules of {}:", r.project);
        for rule in &r.rules {
            println!(
                "  {:<18} {:<8} {} {} (clears at {}, after {} sample(s))",
                rule.rule.as_str(),
                if rule.enabled { "on" } else { "off" },
                match rule.direction {
                    pgsteward::monitor::alerts::Direction::Above => "above",
                    pgsteward::monitor::alerts::Direction::Below => "below",
                },
                rule.threshold,
                rule.clear,
                rule.for_samples
            );
        }
        if r.history.is_empty() {
            println!("no alerts in the last 7 days");
        }
        for h in &r.history {
            let when = chrono::DateTime::from_timestamp_millis(h.started_at)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            println!(
                "  {} {:<18} {} {}",
                when,
                h.rule,
                if h.ended_at.is_none() {
                    "FIRING  "
                } else {
                    "resolved"
                },
                h.message
            );
        }
    });
    Ok(())
}

pub async fn availability(st: &Steward, json: bool, name: &str) -> Result<(), Error> {
    let r = st.availability(name).await?;
    out(json, &r, |r| {
        for w in &r.windows {
            match w.ratio {
                None => println!(
                    "{:>4}  no probes (run the app or `pgsteward history run`)",
                    w.window
                ),
                Some(ratio) => println!(
                    "{:>4}  {:.3} % of {} probes reached the server ({} down){}  target {:.1} %",
                    w.window,
                    ratio * 100.0,
                    w.probes,
                    w.down,
                    w.mean_latency_ms
                        .map(|ms| format!(", mean latency {ms:.1} ms"))
                        .unwrap_or_default(),
                    r.target * 100.0
                ),
            }
        }
    });
    Ok(())
}

/// `pgsteward top`: the dashboard figures, the sessions and the blocking tree, redrawn every
/// `interval` seconds until Ctrl-C (`--once` prints one frame, for scripts and logs).
pub async fn top(st: &Steward, name: &str, interval: u64, once: bool) -> Result<(), Error> {
    use pgsteward::monitor::ActivityFilter;
    use std::io::{IsTerminal, Write};
    if interval == 0 {
        return Err(Error::invalid_input("--interval must be at least 1 second"));
    }
    let clear = std::io::stdout().is_terminal() && !once;
    let filter = ActivityFilter {
        limit: Some(40),
        ..ActivityFilter::default()
    };
    loop {
        let snap = st.dashboard_sample(name).await?;
        let report = st.activity(name, &filter).await?;
        let tree = st.blocking_tree(name).await?;
        let mut frame = String::new();
        if clear {
            frame.push_str("\x1b[H\x1b[2J");
        }
        let c = &snap.connections;
        frame.push_str(&format!(
            "{name} — PostgreSQL {} · {} · up {} · {} connections of {} ({} active, {} idle in transaction) · {} tx/s · cache hit {}\n\n",
            snap.server_version,
            snap.database,
            crate::output::human_duration(Some(snap.uptime_seconds)),
            c.total,
            c.max_connections,
            c.active,
            c.idle_in_transaction,
            snap.tps.map(|t| format!("{t:.1}")).unwrap_or_else(|| "…".into()),
            snap.cache_hit_ratio
                .map(|r| format!("{:.1} %", r * 100.0))
                .unwrap_or_else(|| "…".into()),
        ));
        print!("{frame}");
        crate::report::print_activity(&report, &tree);
        if !once {
            println!("\n(every {interval} s; Ctrl-C quits)");
        }
        let _ = std::io::stdout().flush();
        if once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(interval)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
