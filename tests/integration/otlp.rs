//! OTLP export to a real OpenTelemetry collector (Rotel): `metrics push` sends the metric set
//! with the project on the resource, `history run` exports every sample, and a collector that
//! refuses connections gives a clear error while the sample stays in the history.

use std::time::{Duration, Instant};

use crate::harness::{cli, cli_json, free_port, Home, Pg, Rotel};
use crate::on_each_version;

/// One data point as the collector printed it.
#[derive(Debug, Clone)]
struct Point {
    project: String,
    metric: String,
    unit: String,
    data_type: String,
    attributes: Vec<(String, String)>,
    value: f64,
}

/// Read Rotel's detailed debug log: resources, metrics and their data points.
fn parse(out: &str) -> Vec<Point> {
    let (mut project, mut metric, mut unit, mut data_type) =
        (String::new(), String::new(), String::new(), String::new());
    let mut attrs = Vec::new();
    let mut in_resource = false;
    let mut points = Vec::new();
    for line in out.lines() {
        let l = line.trim();
        if l.starts_with("ResourceMetrics #") {
            project.clear();
        } else if l == "Resource attributes:" {
            in_resource = true;
        } else if l.starts_with("ScopeMetrics") {
            in_resource = false;
        } else if l.starts_with("NumberDataPoints #") {
            attrs.clear();
        } else if let Some(kv) = l.strip_prefix("-> ") {
            let (k, v) = kv.split_once(": ").unwrap_or((kv, ""));
            let v = v
                .strip_prefix("Str(")
                .and_then(|v| v.strip_suffix(')'))
                .unwrap_or(v);
            match k {
                "Name" => metric = v.to_string(),
                "Unit" => unit = v.to_string(),
                "DataType" => data_type = v.to_string(),
                "Description" => {}
                "pgsteward.project" if in_resource => project = v.to_string(),
                _ if !in_resource => attrs.push((k.to_string(), v.to_string())),
                _ => {}
            }
        } else if let Some(v) = l.strip_prefix("Value: ") {
            if let Ok(value) = v.parse() {
                points.push(Point {
                    project: project.clone(),
                    metric: metric.clone(),
                    unit: unit.clone(),
                    data_type: data_type.clone(),
                    attributes: attrs.clone(),
                    value,
                });
            }
        }
    }
    points
}

fn find<'a>(points: &'a [Point], metric: &str) -> Vec<&'a Point> {
    points.iter().filter(|p| p.metric == metric).collect()
}

async fn push_and_history_run_reach_a_collector(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("shop", &pg.uri("postgres"));
    let rotel = Rotel::start();

    let (ok, v) = cli_json(&home, &["--json", "metrics", "push", "shop"], None);
    assert!(!ok, "no endpoint yet: {v}");
    assert_eq!(v["error"]["code"], "invalid_input");

    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "project",
            "otlp",
            "shop",
            "--endpoint",
            &rotel.endpoint(),
        ],
        None,
    );
    assert!(ok, "{v}");
    assert_eq!(v["url"], format!("{}/v1/metrics", rotel.endpoint()));

    let (ok, v) = cli_json(&home, &["--json", "metrics", "push", "shop"], None);
    assert!(ok, "{v}");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["rejected"], 0);
    let sent = v["data_points"].as_u64().unwrap() as usize;

    let out = rotel.wait_for(|o| parse(o).len() >= sent);
    let points = parse(&out);
    assert_eq!(points.len(), sent, "every data point arrived:\n{out}");
    assert!(out.contains("service.name: Str(pgsteward)"), "{out}");
    assert!(points.iter().all(|p| p.project == "shop"), "{out}");

    let max = find(&points, "pgsteward_max_connections");
    let server_max: f64 = pg.sql("postgres", "SHOW max_connections").parse().unwrap();
    assert_eq!(max.len(), 1, "{out}");
    assert_eq!(max[0].value, server_max);
    assert_eq!(max[0].data_type, "Gauge");
    let up = find(&points, "pgsteward_up");
    assert_eq!(up[0].value, 1.0);
    let size = find(&points, "pgsteward_database_size_bytes");
    let postgres = size
        .iter()
        .find(|p| {
            p.attributes
                .contains(&("database".into(), "postgres".into()))
        })
        .unwrap_or_else(|| panic!("the postgres database's size: {size:?}"));
    assert_eq!(postgres.unit, "By");
    assert!(postgres.value > 1_000_000.0, "{postgres:?}");
    // The app's own pool: counters arrive as cumulative sums.
    let acq = find(&points, "pgsteward_pool_acquisitions_total");
    assert_eq!(acq[0].data_type, "Sum", "{acq:?}");
    assert!(acq[0].value >= 1.0, "{acq:?}");
    assert!(!find(&points, "pgsteward_pool_size").is_empty());
    let firing = find(&points, "pgsteward_alert_firing");
    assert!(
        firing
            .iter()
            .any(|p| p.attributes == [("rule".to_string(), "maintenance_failures".to_string())]),
        "{firing:?}"
    );

    // `history run` exports each sample while it runs.
    let before = find(&points, "pgsteward_up").len();
    let mut run = std::process::Command::new(cli())
        .args(["history", "run", "shop", "--interval", "1s"])
        .env("PGSTEWARD_HOME", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = before;
    while seen < before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        seen = find(&parse(&rotel.output()), "pgsteward_up").len();
    }
    let _ = run.kill();
    let _ = run.wait();
    assert!(
        seen >= before + 2,
        "history run exported {} samples in 30 s",
        seen - before
    );

    // A header value (a token) goes to the keyring, never to a file of the data folder.
    let token = format!("Bearer {}", uuid::Uuid::new_v4().simple());
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "project",
            "otlp",
            "shop",
            "--endpoint",
            &rotel.endpoint(),
            "--header",
            "Authorization",
            "--header-value-stdin",
        ],
        Some(&format!("{token}\n")),
    );
    assert!(ok, "{v}");
    assert_eq!(v["has_header_value"], true, "{v}");
    let (ok, v) = cli_json(&home, &["--json", "metrics", "push", "shop"], None);
    assert!(ok, "{v}");
    let secret = token.split_whitespace().last().unwrap();
    for entry in walk(&home.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "the token is in {}",
            entry.display()
        );
    }

    let (ok, v) = cli_json(
        &home,
        &["--json", "project", "otlp", "shop", "--none"],
        None,
    );
    assert!(ok, "{v}");
    assert!(v["settings"].is_null(), "{v}");
    assert_eq!(v["has_header_value"], false, "{v}");
}

/// Every file under a folder.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
on_each_version!(push_and_history_run_reach_a_collector);

async fn unreachable_collector_fails_clearly_and_keeps_the_sample(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("shop", &pg.uri("postgres"));
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let (ok, v) = cli_json(
        &home,
        &["--json", "project", "otlp", "shop", "--endpoint", &endpoint],
        None,
    );
    assert!(ok, "{v}");
    let (ok, v) = cli_json(&home, &["--json", "metrics", "push", "shop"], None);
    assert!(!ok, "{v}");
    assert_eq!(v["error"]["code"], "otlp_unreachable", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&endpoint) && msg.contains("after 3 attempts"),
        "{msg}"
    );

    // The sample was stored all the same.
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "history",
            "show",
            "shop",
            "--range",
            "15m",
            "--metric",
            "max_connections",
        ],
        None,
    );
    assert!(ok, "{v}");
    let server_max: f64 = pg.sql("postgres", "SHOW max_connections").parse().unwrap();
    assert_eq!(v["series"][0]["points"][0]["value"], server_max, "{v}");

    // A header value can only be set with a header name, and a token never goes out over
    // plain HTTP to another machine.
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "project",
            "otlp",
            "shop",
            "--endpoint",
            "http://collector.example:4318",
            "--header",
            "Authorization",
            "--header-value-stdin",
        ],
        Some("Bearer t0ken\n"),
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input", "{v}");
}
on_each_version!(unreachable_collector_fails_clearly_and_keeps_the_sample);

async fn a_hanging_collector_does_not_hold_up_sampling(major: u32) {
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("shop", &pg.uri("postgres"));
    // A "collector" that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "project",
            "otlp",
            "shop",
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
        ],
        None,
    );
    assert!(ok, "{v}");

    let mut run = std::process::Command::new(cli())
        .args(["--json", "history", "run", "shop", "--interval", "1s"])
        .env("PGSTEWARD_HOME", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    let mut samples = 0;
    while samples < 4 {
        let line = lines.next().expect("history run ended early").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        samples += 1;
    }
    let connections = accepted.load(Ordering::SeqCst);
    let _ = run.kill();
    let _ = run.wait();
    // Four samples went by while the first export was still waiting for its answer: exports
    // run beside sampling, one at a time, not one per sample.
    assert!((1..=2).contains(&connections), "{connections} connections");
}
on_each_version!(a_hanging_collector_does_not_hold_up_sampling);
