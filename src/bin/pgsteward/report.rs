//! Human renderings of the monitoring reports: activity table, blocking tree, plans, health.

use pgsteward::monitor::{
    ActivityReport, BlockingNode, BlockingTree, ExplainReport, HealthReport, HealthStatus, PlanNode,
};

use crate::output::{cell, human_duration, one_line};

pub fn print_activity(r: &ActivityReport, tree: &BlockingTree) {
    println!(
        "{:>7}  {:<12} {:<12} {:<16} {:<20} {:<22} {:>7} {:>7}  {:<14} QUERY",
        "PID", "USER", "DATABASE", "APPLICATION", "STATE", "WAIT", "XACT", "QUERY", "FLAGS"
    );
    for s in &r.sessions {
        let wait = match (&s.wait_event_type, &s.wait_event) {
            (Some(t), Some(e)) => Some(format!("{t}:{e}")),
            _ => None,
        };
        let mut flags = Vec::new();
        if s.long_running {
            flags.push("long".to_string());
        }
        if s.idle_in_transaction {
            flags.push("idle-tx".into());
        }
        if !s.blocked_by.is_empty() {
            flags.push(format!(
                "blocked:{}",
                s.blocked_by
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        if s.own_session {
            flags.push("self".into());
        }
        println!(
            "{:>7}  {:<12} {:<12} {:<16} {:<20} {:<22} {:>7} {:>7}  {:<14} {}",
            s.pid,
            cell(s.user.as_deref(), 12),
            cell(s.database.as_deref(), 12),
            cell(s.application.as_deref().or(s.backend_type.as_deref()), 16),
            cell(s.state.as_deref(), 20),
            cell(wait.as_deref(), 22),
            human_duration(s.xact_seconds),
            human_duration(if s.state.as_deref() == Some("active") {
                s.query_seconds
            } else {
                None
            }),
            flags.join(" "),
            one_line(s.query.as_deref(), 80)
        );
    }
    let long = r.sessions.iter().filter(|s| s.long_running).count();
    let idle_tx = r.sessions.iter().filter(|s| s.idle_in_transaction).count();
    println!(
        "{} session(s){}; {long} running longer than {}s, {idle_tx} idle in transaction",
        r.sessions.len(),
        if r.truncated { " (more not shown)" } else { "" },
        r.long_running_seconds
    );
    println!();
    if tree.roots.is_empty() {
        println!("No session waits for a lock held by another.");
        return;
    }
    println!(
        "Blocking ({} waiting{}):",
        tree.waiting,
        if tree.cycles {
            "; a wait cycle: the deadlock detector will cancel one of them"
        } else {
            ""
        }
    );
    fn node(n: &BlockingNode, depth: usize) {
        let indent = "    ".repeat(depth);
        let lead = if depth == 0 { "" } else { "└─ " };
        let mut what = Vec::new();
        if let Some(m) = &n.waiting_for_mode {
            what.push(format!(
                "waits {m} on {}{} for {}",
                n.lock_type.as_deref().unwrap_or("?"),
                n.relation
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                human_duration(n.waiting_seconds)
            ));
        } else if let Some(s) = &n.state {
            what.push(s.clone());
        }
        if n.xact_seconds.is_some() {
            what.push(format!("xact {}", human_duration(n.xact_seconds)));
        }
        if n.blocks_total > 0 {
            what.push(format!("blocks {}", n.blocks_total));
        }
        if n.in_cycle {
            what.push("IN CYCLE".into());
        }
        if n.shown_elsewhere {
            what.push("(shown above)".into());
        }
        println!(
            "{indent}{lead}{} {} [{}] {}",
            n.pid,
            n.user.as_deref().unwrap_or("-"),
            what.join(", "),
            one_line(n.query.as_deref(), 70)
        );
        if let Some(note) = &n.note {
            println!("{indent}   note: {note}");
        }
        for c in &n.children {
            node(c, depth + 1);
        }
    }
    for r in &tree.roots {
        node(r, 0);
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.3} ms"))
        .unwrap_or_else(|| "-".into())
}

pub fn print_explain(r: &ExplainReport) {
    for w in &r.warnings {
        println!("warning: {w}");
    }
    if !r.warnings.is_empty() {
        println!();
    }
    fn node(n: &PlanNode, depth: usize) {
        let indent = "    ".repeat(depth);
        let lead = if depth == 0 { "" } else { "-> " };
        let mut title = n.node_type.clone();
        if let Some(j) = &n.join_type {
            if n.node_type.contains("Join") || n.node_type == "Nested Loop" {
                title = format!("{title} ({j})");
            }
        }
        if let Some(i) = &n.index {
            title.push_str(&format!(" using {i}"));
        }
        if let Some(rel) = &n.relation {
            title.push_str(&format!(" on {rel}"));
            if let Some(a) = n.alias.as_ref().filter(|a| *a != rel) {
                title.push_str(&format!(" {a}"));
            }
        }
        if let Some(sp) = &n.subplan {
            title.push_str(&format!(" [{sp}]"));
        }
        let rows = match (n.actual_rows, n.loops) {
            (_, Some(l)) if l < 1.0 => format!("rows est {:.0}, never executed", n.estimated_rows),
            (Some(a), Some(l)) => format!(
                "rows est {:.0} / actual {}{}, loops {l:.0}",
                n.estimated_rows,
                if a.fract() == 0.0 {
                    format!("{a:.0}")
                } else {
                    format!("{a:.2}")
                },
                n.misestimate
                    .as_ref()
                    .filter(|m| m.factor >= 10.0)
                    .map(|m| format!(
                        " ({:.0}× {})",
                        m.factor,
                        if m.underestimated { "under" } else { "over" }
                    ))
                    .unwrap_or_default()
            ),
            _ => format!("rows est {:.0}, cost {:.2}", n.estimated_rows, n.total_cost),
        };
        let time = match (n.inclusive_ms, n.exclusive_ms) {
            (Some(i), Some(e)) => format!("  time {} (self {})", ms(Some(i)), ms(Some(e))),
            _ => String::new(),
        };
        let bufs = n
            .buffers
            .as_ref()
            .map(|b| {
                let mut s = format!("  buffers hit {} read {}", b.shared_hit, b.shared_read);
                if b.temp_read + b.temp_written > 0 {
                    s.push_str(&format!(" temp {}/{}", b.temp_read, b.temp_written));
                }
                s
            })
            .unwrap_or_default();
        println!("{indent}{lead}{title}  ({rows}){time}{bufs}");
        let pad = format!("{indent}{}", if depth == 0 { "   " } else { "      " });
        for (label, v) in [
            ("Index Cond", &n.index_cond),
            ("Cond", &n.join_cond),
            ("Filter", &n.filter),
        ] {
            if let Some(v) = v {
                println!("{pad}{label}: {v}");
            }
        }
        if let Some(r) = n.rows_removed_by_filter.filter(|r| *r > 0.0) {
            println!("{pad}Rows removed by filter: {r:.0}");
        }
        if let Some(m) = &n.sort_method {
            println!(
                "{pad}Sort: {m}, {} {}",
                n.sort_space_kb
                    .map(|k| format!("{k:.0} kB"))
                    .unwrap_or_default(),
                n.sort_space_type.as_deref().unwrap_or("")
            );
        }
        for h in &n.hints {
            println!("{pad}HINT: {}", h.message);
        }
        for c in &n.children {
            node(c, depth + 1);
        }
    }
    node(&r.plan, 0);
    for p in &r.other_plans {
        println!();
        node(p, 0);
    }
    println!();
    if let Some(p) = r.planning_ms {
        println!("Planning time:  {p:.3} ms");
    }
    if let Some(e) = r.execution_ms {
        println!("Execution time: {e:.3} ms");
    }
    for t in &r.triggers {
        println!(
            "Trigger {}{}: {:.3} ms, {:.0} call(s)",
            t.name,
            t.relation
                .as_deref()
                .map(|r| format!(" on {r}"))
                .unwrap_or_default(),
            t.time_ms,
            t.calls
        );
    }
    if r.analyzed {
        println!("The statement was executed and rolled back.");
    }
    if !r.hints.is_empty() {
        println!("\n{} hint(s); see HINT lines above.", r.hints.len());
    }
}

fn status_label(s: HealthStatus) -> String {
    s.as_str().to_uppercase()
}

pub fn print_health(r: &HealthReport) {
    println!(
        "PostgreSQL {}, database {}: {}",
        r.server_version,
        r.database,
        status_label(r.status)
    );
    println!();
    for c in &r.checks {
        println!("{:<9} {:<38} {}", status_label(c.status), c.title, c.figure);
        println!("          {}", c.message);
        for i in &c.items {
            if i.status != HealthStatus::Ok || c.status != HealthStatus::Ok {
                println!(
                    "            {:<8} {} ({}): {}",
                    status_label(i.status),
                    i.name,
                    i.figure,
                    i.message
                );
            }
        }
    }
}
