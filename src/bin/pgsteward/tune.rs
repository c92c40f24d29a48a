//! `pgsteward tune`: recommendations as a grouped table or JSON, the SQL script, apply (after
//! confirmation) and rollback.

use std::path::PathBuf;

use clap::Args;
use pgsteward::tune::{
    ApplyReport, ProfileInput, ProfileSource, SettingChange, TakesEffect, TuneReport,
};
use pgsteward::{Error, ErrorCode, Steward};

use crate::output::out;

#[derive(Args)]
pub struct TuneArgs {
    /// RAM of the server, e.g. 16GB (detected when the server runs on this machine).
    #[arg(long)]
    ram: Option<String>,
    /// CPUs of the server.
    #[arg(long, allow_negative_numbers = true)]
    cpus: Option<i64>,
    /// Storage: ssd, hdd, san or nvme.
    #[arg(long)]
    storage: Option<String>,
    /// Workload: web, oltp, dw, desktop or mixed.
    #[arg(long)]
    workload: Option<String>,
    /// Connections you expect (default: PGTune's for the workload).
    #[arg(long, allow_negative_numbers = true)]
    connections: Option<i64>,
    /// Database size compared with RAM: smaller, larger or unknown.
    #[arg(long)]
    db_size: Option<String>,
    /// Operating system of the server: linux, windows or mac.
    #[arg(long)]
    os: Option<String>,
    /// Apply the recommendations that change a value (ALTER SYSTEM, then reload).
    #[arg(long, conflicts_with_all = ["rollback", "script"])]
    apply: bool,
    /// With --apply: only these settings, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "apply")]
    only: Vec<String>,
    /// Do not ask before applying.
    #[arg(long)]
    yes: bool,
    /// Restore the values the latest --apply replaced.
    #[arg(long, conflicts_with = "script")]
    rollback: bool,
    /// Print the SQL script and postgresql.conf snippet, to apply by hand.
    #[arg(long)]
    script: bool,
    /// Write the memory budget chart (SVG) to this file.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
}

impl TuneArgs {
    fn input(&self) -> ProfileInput {
        ProfileInput {
            ram: self.ram.clone(),
            cpus: self.cpus,
            storage: self.storage.clone(),
            workload: self.workload.clone(),
            connections: self.connections,
            db_size: self.db_size.clone(),
            os: self.os.clone(),
        }
    }
}

pub async fn run(st: &Steward, name: &str, a: TuneArgs, json: bool) -> Result<(), Error> {
    if a.rollback {
        let r = st.tune_rollback(name).await?;
        out(json, &r, print_apply);
        return Ok(());
    }
    let report = st.tune_recommend(name, &a.input()).await?;
    if let Some(path) = &a.chart {
        std::fs::write(path, &report.memory_chart_svg)
            .map_err(|e| Error::io("writing the chart", e))?;
    }
    if a.script {
        out(
            json,
            &serde_json::json!({"sql": report.script_sql, "conf": report.conf_snippet}),
            |_| {
                println!("{}", report.script_sql);
                println!("-- or in postgresql.conf:\n{}", report.conf_snippet);
            },
        );
        return Ok(());
    }
    if !a.apply {
        let mut v = serde_json::to_value(&report).expect("serializable");
        if let Some(o) = v.as_object_mut() {
            o.remove("memory_chart_svg");
        }
        out(json, &v, |_| print_report(&report));
        return Ok(());
    }
    let known: Vec<&str> = report.items().map(|r| r.name.as_str()).collect();
    if let Some(bad) = a.only.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(Error::invalid_input(format!(
            "{bad} is not among the recommendations ({}).",
            known.join(", ")
        )));
    }
    let changes: Vec<SettingChange> = report
        .items()
        .filter(|r| r.changes && r.takes_effect != TakesEffect::NotASetting)
        .filter(|r| a.only.is_empty() || a.only.contains(&r.name))
        .filter_map(|r| {
            r.recommended.as_ref().map(|v| SettingChange {
                name: r.name.clone(),
                value: v.clone(),
            })
        })
        .collect();
    if !changes.is_empty() {
        let lines: Vec<String> = changes
            .iter()
            .map(|c| format!("{} = {}", c.name, c.value))
            .collect();
        crate::output::confirm(
            a.yes,
            json,
            &lines,
            &format!("Apply these {} change(s) with ALTER SYSTEM?", changes.len()),
            &format!(
                "Applying changes {} on the server. Repeat with --yes to confirm.",
                lines.join(", ")
            ),
        )?;
    }
    let r = match st.tune_apply(name, &changes).await {
        Ok(r) => r,
        Err(e) if e.code == ErrorCode::PermissionDenied && !json => {
            // Offer the way by hand: the script for a privileged role, or the file lines.
            println!("{}", report.script_sql);
            println!("-- or in postgresql.conf:\n{}", report.conf_snippet);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    out(json, &r, print_apply);
    Ok(())
}

fn print_report(r: &TuneReport) {
    let p = &r.profile;
    println!(
        "PostgreSQL {}: {} RAM, {} CPUs, {} storage, {} workload, {} connections ({} profile)",
        r.server_version,
        pgsteward::tune::pgtune::fmt_kb(p.ram_kb),
        p.cpus
            .map(|c| c.to_string())
            .unwrap_or_else(|| "unknown".into()),
        p.storage.as_str(),
        p.workload.as_str(),
        p.connections
            .map(|c| c.to_string())
            .unwrap_or_else(|| "default".into()),
        match p.source {
            ProfileSource::Entered => "entered",
            ProfileSource::Detected => "detected",
            ProfileSource::Saved => "saved",
        },
    );
    for g in &r.groups {
        println!("\n{}", g.title);
        for i in &g.items {
            let effect = match i.takes_effect {
                TakesEffect::Reload => "reload",
                TakesEffect::Restart => "restart",
                TakesEffect::NotASetting => "",
            };
            println!(
                "  {} {:<36} {:>10} -> {:<10} {:<8} {}",
                if i.changes { "*" } else { " " },
                i.name,
                i.current.as_deref().unwrap_or("-"),
                i.recommended.as_deref().unwrap_or("-"),
                effect,
                i.reason
            );
            if let Some(a) = &i.adjustment {
                println!("      adjusted: {a}");
            }
            for e in &i.evidence {
                println!("      evidence: {e}");
            }
            if let Some(e) = &i.expected_effect {
                println!("      effect ({:?} confidence): {e}", i.confidence);
            }
            if i.pending_restart {
                println!("      a changed value already waits for a restart");
            }
        }
    }
    if let Some(e) = &r.evidence_error {
        println!("\nstatistics could not be read ({}): {}", e.code, e.message);
    }
    println!("\n* differs from the current value. Apply with --apply [--only a,b], or get the SQL with --script.");
}

fn print_apply(r: &ApplyReport) {
    println!("{} {} for project {}:", r.action, r.history_id, r.project);
    for s in &r.settings {
        println!(
            "  {:<36} {:>10} -> {:<10}{}",
            s.name,
            s.previous,
            s.now,
            if s.pending_restart {
                "  (waits for a restart)"
            } else {
                ""
            }
        );
    }
    if r.restart_needed {
        println!("Restart the server for the settings marked above to take effect.");
    }
}
