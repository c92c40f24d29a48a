//! `pgsteward schedule`: show and set a project's backup schedules, and `run-due`, the command
//! system cron or a systemd timer calls every few minutes.

use clap::{Args, Subcommand};
use pgsteward::schedule::ScheduledJob;
use pgsteward::{Error, Steward};

use crate::output::out;

#[derive(Subcommand)]
pub enum ScheduleCmd {
    /// The project's full backup, verify and recovery test schedules, next and last runs.
    Show { name: String },
    /// Set schedules (5-field cron expressions in this computer's local time), or turn jobs off.
    Set(SetArgs),
    /// Run every job whose time has come since its last run (all projects unless named).
    RunDue { names: Vec<String> },
}

#[derive(Args)]
pub struct SetArgs {
    name: String,
    /// Full backup (then retention by BACKUP_RETENTION_DAYS), e.g. "0 2 * * *".
    #[arg(long, value_name = "CRON")]
    full: Option<String>,
    /// Sampled verify of the newest backup, e.g. "30 3 * * 0".
    #[arg(long, value_name = "CRON")]
    verify: Option<String>,
    /// Recovery test of the newest backup in a throwaway server, e.g. "0 5 * * 6".
    #[arg(long, value_name = "CRON")]
    recovery_test: Option<String>,
    /// Turn a job off: full, verify or recovery-test (repeatable).
    #[arg(long, value_name = "JOB")]
    off: Vec<String>,
    /// Go back to the environment's schedule for a job (repeatable).
    #[arg(long, value_name = "JOB")]
    default: Vec<String>,
}

pub async fn run(st: &Steward, json: bool, cmd: ScheduleCmd) -> Result<(), Error> {
    match cmd {
        ScheduleCmd::Show { name } => {
            let r = st.schedule_show(&name).await?;
            out(json, &r, print_schedule);
        }
        ScheduleCmd::Set(a) => {
            let mut changes = Vec::new();
            for (job, cron) in [
                (ScheduledJob::Full, a.full),
                (ScheduledJob::Verify, a.verify),
                (ScheduledJob::RecoveryTest, a.recovery_test),
            ] {
                if let Some(c) = cron {
                    changes.push((job, Some(c)));
                }
            }
            for j in &a.off {
                changes.push((j.parse()?, None));
            }
            let reset = a
                .default
                .iter()
                .map(|j| j.parse())
                .collect::<Result<Vec<ScheduledJob>, Error>>()?;
            if changes.is_empty() && reset.is_empty() {
                return Err(Error::invalid_input(
                    "nothing to set: give --full, --verify, --recovery-test, --off or --default",
                ));
            }
            let mut r = st.schedule_set(&a.name, &changes).await?;
            if !reset.is_empty() {
                r = st.schedule_reset(&a.name, &reset).await?;
            }
            out(json, &r, print_schedule);
        }
        ScheduleCmd::RunDue { names } => {
            let r = st.schedule_run_due(&names).await?;
            out(json, &r, |r| {
                if r.runs.is_empty() && r.busy.is_empty() && r.problems.is_empty() {
                    println!("nothing due");
                }
                for d in &r.runs {
                    println!(
                        "{}  {}  {}  {}  {}",
                        d.project,
                        d.job.as_str(),
                        d.due_at,
                        d.outcome,
                        d.message
                    );
                }
                for b in &r.busy {
                    println!("{b}: another run-due is working on it");
                }
                for p in &r.problems {
                    eprintln!("{p}");
                }
            });
            if r.runs.iter().any(|d| d.outcome == "failed") || !r.problems.is_empty() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

fn print_schedule(r: &pgsteward::steward::ScheduleReport) {
    println!("project {}; times in {}", r.project, r.time_zone);
    for j in &r.jobs {
        println!(
            "{:<14} {:<16} ({})  next {}",
            j.job.as_str(),
            j.cron.as_deref().unwrap_or("off"),
            j.source,
            j.next_run.as_deref().unwrap_or("-")
        );
        if let Some(l) = &j.last_run {
            println!(
                "               last run {} (for {}): {}  {}",
                l.started_at, l.due_at, l.outcome, l.message
            );
        }
    }
}
