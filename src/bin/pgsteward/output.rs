//! Output helpers shared by the subcommands: JSON or human text, sizes, durations, progress.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use pgsteward::jobs::{JobProgress, ProgressSink};
use pgsteward::{Error, ErrorCode};
use serde::Serialize;

/// Ask before a destructive action. With `--yes` it goes ahead; on a terminal (and not in JSON
/// mode) it shows `details` and asks `question`; otherwise it refuses with
/// `confirmation_required` and `refusal`, so scripts never act by accident.
pub fn confirm(
    yes: bool,
    json: bool,
    details: &[String],
    question: &str,
    refusal: &str,
) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    if json || !std::io::stdin().is_terminal() {
        return Err(Error::new(
            ErrorCode::ConfirmationRequired,
            refusal.to_string(),
        ));
    }
    for d in details {
        println!("  {d}");
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::new(ErrorCode::Cancelled, "Nothing was changed."))
    }
}

/// A secret read from standard input (one line; the newline is dropped), or asked for on the
/// terminal without echo.
pub fn read_secret(from_stdin: bool, prompt: &str) -> Result<zeroize::Zeroizing<String>, Error> {
    let mut s = zeroize::Zeroizing::new(String::new());
    if from_stdin || !std::io::stdin().is_terminal() {
        std::io::stdin()
            .lock()
            .read_line(&mut s)
            .map_err(|e| Error::io("reading from standard input", e))?;
    } else {
        eprint!("{prompt}: ");
        let _ = std::io::stderr().flush();
        let _echo = EchoOff::new();
        std::io::stdin()
            .lock()
            .read_line(&mut s)
            .map_err(|e| Error::io("reading the passphrase", e))?;
        eprintln!();
    }
    let trimmed = zeroize::Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string());
    Ok(trimmed)
}

/// Turns terminal echo off while alive.
struct EchoOff(Option<nix::sys::termios::Termios>);

impl EchoOff {
    fn new() -> Self {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = std::io::stdin();
        let Ok(orig) = tcgetattr(&stdin) else {
            return EchoOff(None);
        };
        let mut t = orig.clone();
        t.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t);
        EchoOff(Some(orig))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(orig) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                orig,
            );
        }
    }
}

pub fn out<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("serializable")
        );
    } else {
        human(value);
    }
}

pub fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A duration for a table cell: "850ms", "12.3s", "5m03s", "2h10m", "3d04h".
pub fn human_duration(secs: Option<f64>) -> String {
    let Some(s) = secs.filter(|s| s.is_finite()) else {
        return "-".into();
    };
    let s = s.max(0.0);
    if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s < 86400.0 {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else {
        format!(
            "{}d{:02}h",
            (s / 86400.0) as u64,
            ((s % 86400.0) / 3600.0) as u64
        )
    }
}

/// Query text on one line, cut to `max` characters.
pub fn one_line(q: Option<&str>, max: usize) -> String {
    let flat = q
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

pub fn cell(s: Option<&str>, width: usize) -> String {
    one_line(s.or(Some("-")), width)
}

/// A job's spinner on a terminal (nothing under `--json` or when stderr is not a terminal).
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    pub fn start(json: bool) -> Spinner {
        if json || !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Spinner(Some(bar))
    }

    /// A handle for a job's progress callback to set the message with, when it is shown.
    pub fn handle(&self) -> Option<ProgressBar> {
        self.0.clone()
    }

    /// Take the spinner off the screen, before the job's outcome is printed.
    pub fn clear(self) {
        if let Some(b) = self.0 {
            b.finish_and_clear();
        }
    }
}

/// A progress sink for a backup job, with the spinner it draws.
pub fn progress(json: bool) -> (ProgressSink, Spinner) {
    let spinner = Spinner::start(json);
    let Some(b) = spinner.handle() else {
        return (Arc::new(|_: &JobProgress| {}), spinner);
    };
    let sink: ProgressSink = Arc::new(move |p: &JobProgress| {
        b.set_message(format!(
            "{}: {} at {}/s, {:.1} s",
            p.phase,
            human_bytes(p.bytes as f64),
            human_bytes(p.rate_bytes_per_sec),
            p.elapsed_ms as f64 / 1000.0
        ));
    });
    (sink, spinner)
}
