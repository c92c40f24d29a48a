//! Big tables loaded over several COPY sessions at once.
//!
//! pg_restore loads each table with one COPY, so while the largest table loads (often most of a
//! database) one core works and the others wait. For a directory-format backup restored into a
//! new database with several jobs, [`super::restore::prepare`] leaves the data of tables of at
//! least [`SPLIT_MIN`] bytes in the repository. Here pg_restore creates the schema (pre-data);
//! then each such table's data is read from the repository (every segment authenticated before
//! a byte of it is passed on), cut at row boundaries into blocks and fed to N psql sessions that
//! each run the table's own COPY; its size and SHA-256 are checked before the sessions may end
//! (a mismatch kills them, so nothing of the table commits). Then pg_restore loads the other
//! tables and builds indexes and constraints (post-data), N jobs each. The caller drops the new
//! database when anything fails.
//!
//! The session settings and the COPY statement are pg_restore's own: it prints them for the
//! table from a copy of the table of contents beside an empty data file. Rows keep their order
//! within a block (about 1 MiB); blocks loaded by different sessions interleave in the table.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use super::directory::{dump_file, render, restore_args, run_tool, MAX_JOBS};
use super::fetch::check_end;
use super::logical::{collect_stderr, corrupt, map_object_err, open_plaintext, tool_failed};
use super::logical::{RestoreMode, ToolInvocation};
use super::pipeline::Digester;
use super::repo::{Manifest, ObjectEntry, Storage};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, Reporter};

/// Table data of at least this many bytes is loaded over several sessions.
pub const SPLIT_MIN: u64 = 64 << 20;
/// Rows go to the sessions in blocks of about this size, cut after a row.
const BLOCK: usize = 1 << 20;

/// Whether an object is one table's data, big enough to load over several sessions.
pub fn splittable(obj: &ObjectEntry) -> bool {
    obj.plaintext_bytes >= SPLIT_MIN && toc_id(obj).is_some()
}

/// `1234` for `1234.dat`, the data file of the table-of-contents entry 1234.
fn toc_id(obj: &ObjectEntry) -> Option<&str> {
    let id = dump_file(obj)?.strip_suffix(".dat")?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// What a split restore reads and runs.
pub struct SplitRestore<'a> {
    pub storage: &'a dyn Storage,
    pub manifest: &'a Manifest,
    pub dek: &'a [u8; 32],
    pub pg_restore: &'a ToolInvocation,
    pub psql: &'a ToolInvocation,
    pub mode: RestoreMode,
}

impl SplitRestore<'_> {
    /// Restore `dump_dir` (every dump file fetched but the `big` ones) into the new database;
    /// `work` is a private scratch folder for lists and heads.
    pub fn run(
        &self,
        dump_dir: &Path,
        work: &Path,
        big: &[&ObjectEntry],
        rep: &mut Reporter,
        cancel: &CancelToken,
    ) -> Result<()> {
        let id = &self.manifest.backup_id;
        fs::create_dir_all(work).map_err(|e| Error::io("creating the restore folder", e))?;
        rep.phase("reading the table of contents");
        let list_file = work.join("toc.list");
        let args = vec![
            "--format=directory".to_string(),
            "--list".to_string(),
            format!("--file={}", list_file.display()),
            dump_dir.display().to_string(),
        ];
        self.pg_restore_run(&args, rep, cancel)?;
        let list = fs::read_to_string(&list_file)
            .map_err(|e| Error::io("reading pg_restore's list", e))?;
        let ids: Vec<&str> = big.iter().filter_map(|o| toc_id(o)).collect();
        let (entries, rest) = split_list(&list, &ids);
        for (obj, toc) in big.iter().zip(&ids) {
            if !entries.iter().any(|(i, _)| i == toc) {
                return Err(corrupt(
                    id,
                    format!("its table of contents has no table data for {}", obj.name),
                ));
            }
        }
        let rest_file = work.join("rest.list");
        fs::write(&rest_file, rest).map_err(|e| Error::io("writing a restore list", e))?;
        let heads = self.heads(dump_dir, work, &entries, rep, cancel)?;

        rep.phase("restoring the schema (pre-data)");
        let mut args = restore_args(self.pg_restore, self.mode);
        args.extend(["--section=pre-data".into(), dump_dir.display().to_string()]);
        self.pg_restore_run(&args, rep, cancel)?;

        let sessions = self.mode.jobs.clamp(2, MAX_JOBS);
        for (obj, toc) in big.iter().zip(&ids) {
            let head = &heads
                .iter()
                .find(|(i, _)| i == toc)
                .expect("a head for every entry")
                .1;
            self.load_table(obj, head, sessions, rep, cancel)?;
        }

        rep.phase("restoring the other data");
        let mut args = restore_args(self.pg_restore, self.mode);
        args.extend([
            "--section=data".into(),
            format!("--use-list={}", rest_file.display()),
            dump_dir.display().to_string(),
        ]);
        self.pg_restore_run(&args, rep, cancel)?;

        rep.phase("building indexes and constraints (post-data)");
        let mut args = restore_args(self.pg_restore, self.mode);
        args.extend(["--section=post-data".into(), dump_dir.display().to_string()]);
        self.pg_restore_run(&args, rep, cancel)
    }

    fn pg_restore_run(
        &self,
        args: &[String],
        rep: &mut Reporter,
        cancel: &CancelToken,
    ) -> Result<()> {
        rep.command(&render(&self.pg_restore.program, args));
        let err = run_tool(self.pg_restore, args, "pg_restore", cancel, || {})?;
        rep.stderr("pg_restore", &err);
        Ok(())
    }

    /// pg_restore's script for each big table up to its `COPY ... FROM stdin;`: printed from a
    /// copy of the table of contents beside empty data files.
    fn heads(
        &self,
        dump_dir: &Path,
        work: &Path,
        entries: &[(String, String)],
        rep: &mut Reporter,
        cancel: &CancelToken,
    ) -> Result<Vec<(String, String)>> {
        let dir = work.join("heads");
        fs::create_dir_all(&dir).map_err(|e| Error::io("creating the restore folder", e))?;
        fs::copy(dump_dir.join("toc.dat"), dir.join("toc.dat"))
            .map_err(|e| Error::io("copying the table of contents", e))?;
        let mut heads = Vec::new();
        for (toc, line) in entries {
            fs::write(dir.join(format!("{toc}.dat")), b"")
                .map_err(|e| Error::io("writing an empty data file", e))?;
            let list = work.join(format!("{toc}.list"));
            fs::write(&list, format!("{line}\n"))
                .map_err(|e| Error::io("writing a restore list", e))?;
            let script = work.join(format!("{toc}.sql"));
            let mut args = vec![
                "--format=directory".to_string(),
                "--data-only".to_string(),
                format!("--use-list={}", list.display()),
                format!("--file={}", script.display()),
            ];
            if self.mode.no_owner {
                args.extend(["--no-owner".into(), "--no-privileges".into()]);
            }
            args.push(dir.display().to_string());
            self.pg_restore_run(&args, rep, cancel)?;
            let text = fs::read_to_string(&script)
                .map_err(|e| Error::io("reading pg_restore's script", e))?;
            let head = copy_head(&text).ok_or_else(|| {
                Error::new(
                    ErrorCode::ToolFailed,
                    format!("pg_restore printed no COPY statement for entry {toc}"),
                )
            })?;
            heads.push((toc.clone(), head.to_string()));
        }
        Ok(heads)
    }

    /// Load one table's data over `sessions` psql sessions.
    fn load_table(
        &self,
        obj: &ObjectEntry,
        head: &str,
        sessions: usize,
        rep: &mut Reporter,
        cancel: &CancelToken,
    ) -> Result<()> {
        rep.phase(&format!(
            "loading {} over {sessions} sessions",
            copy_target(head)
        ));
        rep.total(Some(obj.plaintext_bytes), false);
        let args = vec![
            "--no-psqlrc".to_string(),
            "--quiet".to_string(),
            "--no-password".to_string(),
            "--set=ON_ERROR_STOP=1".to_string(),
            format!("--dbname={}", self.psql.conninfo),
        ];
        rep.command(&format!(
            "{} (x{sessions}, each running the table's COPY with its share of the rows)",
            render(&self.psql.program, &args)
        ));
        let mut children = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            let mut cmd = self.psql.command();
            cmd.args(&args).stdin(Stdio::piped()).process_group(0);
            match cmd.spawn() {
                Ok(mut child) => {
                    let err = collect_stderr(&mut child);
                    children.push(Session { child, err });
                }
                Err(e) => {
                    kill_all(&mut children);
                    return Err(Error::new(
                        ErrorCode::ToolFailed,
                        format!("could not start {}: {e}", self.psql.program.display()),
                    ));
                }
            }
        }
        let stdins: Vec<ChildStdin> = children
            .iter_mut()
            .map(|s| s.child.stdin.take().expect("stdin piped"))
            .collect();
        let (blocks, inbox) = sync_channel::<Vec<u8>>(sessions * 2);
        let (spent, recycled) = channel::<Vec<u8>>();
        let inbox = Mutex::new(inbox);
        let broken = AtomicBool::new(false);
        let pumped = std::thread::scope(|s| {
            for stdin in stdins {
                let spent = spent.clone();
                let (inbox, broken) = (&inbox, &broken);
                s.spawn(move || feed(stdin, head, inbox, spent, broken));
            }
            drop(spent);
            let r = self.pump(obj, blocks, &recycled, &broken, rep, cancel);
            if r.is_err() {
                // Before the sessions see the end of their input: nothing of the table commits.
                kill_all(&mut children);
            }
            r
        });
        let mut failed = None;
        for s in children {
            let text = s.finish()?;
            match text {
                Ok(warnings) => rep.stderr("psql", &warnings),
                Err(text) => failed = failed.or(Some(text)),
            }
        }
        match (pumped, failed) {
            // A damaged backup or a cancel says so, whatever the killed sessions printed.
            (Err(e), _) if e.code != ErrorCode::ToolFailed => Err(e),
            (_, Some(text)) => Err(tool_failed("psql (COPY)", &text)),
            (r, None) => r,
        }
    }

    /// Read the table's plaintext into row-aligned blocks for the sessions; check its size and
    /// digest at the end, while the sessions still wait for more (their COPY not yet ended).
    fn pump(
        &self,
        obj: &ObjectEntry,
        blocks: SyncSender<Vec<u8>>,
        recycled: &Receiver<Vec<u8>>,
        broken: &AtomicBool,
        rep: &mut Reporter,
        cancel: &CancelToken,
    ) -> Result<()> {
        let id = &self.manifest.backup_id;
        let mut dec = open_plaintext(self.storage, self.manifest, self.dek, obj)?;
        let mut hasher = Digester::new(true);
        let mut plain = 0u64;
        let mut carry: Vec<u8> = Vec::new();
        let mut pending: Option<Vec<u8>> = None;
        loop {
            if cancel.is_cancelled() {
                return Err(Error::new(
                    ErrorCode::Cancelled,
                    "The restore was cancelled.",
                ));
            }
            if broken.load(Ordering::Relaxed) {
                return Err(Error::new(
                    ErrorCode::ToolFailed,
                    "a COPY session stopped reading its rows",
                ));
            }
            let mut block = recycled.try_recv().unwrap_or_default();
            block.clear();
            block.resize(BLOCK.max(carry.len() * 2), 0);
            block[..carry.len()].copy_from_slice(&carry);
            let mut filled = carry.len();
            let mut eof = false;
            loop {
                if filled == block.len() {
                    if block.contains(&b'\n') {
                        break;
                    }
                    // One row longer than a block: keep reading until it ends.
                    block.resize(block.len() * 2, 0);
                }
                let n = dec
                    .read(&mut block[filled..])
                    .map_err(|e| map_object_err(id, &obj.name, e))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                hasher.update(&block[filled..filled + n]);
                plain += n as u64;
                filled += n;
            }
            let cut = if eof {
                filled
            } else {
                block[..filled]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(filled, |p| p + 1)
            };
            carry.clear();
            carry.extend_from_slice(&block[cut..filled]);
            block.truncate(cut);
            if eof {
                // The last block goes out only once the whole table checked out: it holds the
                // end-of-data line (`\.`) with the blank lines after it, which must reach the
                // same session, so it is joined to the one before.
                check_end(id, obj, &mut dec, plain, hasher)?;
                let last = match pending.take() {
                    Some(mut held) => {
                        held.extend_from_slice(&block);
                        held
                    }
                    None => block,
                };
                return send(&blocks, last);
            }
            if let Some(held) = pending.replace(block) {
                send(&blocks, held)?;
            }
            rep.bytes(plain);
        }
    }
}

fn send(blocks: &SyncSender<Vec<u8>>, block: Vec<u8>) -> Result<()> {
    if block.is_empty() {
        return Ok(());
    }
    blocks.send(block).map_err(|_| {
        Error::new(
            ErrorCode::ToolFailed,
            "the COPY sessions stopped reading their rows",
        )
    })
}

/// One psql session and its collected stderr.
struct Session {
    child: Child,
    err: JoinHandle<String>,
}

impl Session {
    /// Wait for the session: `Ok(warnings)` when it succeeded, `Err(stderr)` when not.
    fn finish(mut self) -> Result<std::result::Result<String, String>> {
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io("waiting for psql", e))?;
        let text = self.err.join().unwrap_or_default();
        Ok(if status.success() {
            Ok(text)
        } else {
            Err(text)
        })
    }
}

fn kill_all(sessions: &mut [Session]) {
    for s in sessions.iter_mut() {
        let pgid = nix::unistd::Pid::from_raw(s.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// One session's writer: the head (settings and COPY), then the blocks it takes, then the end
/// of its input, which ends the COPY. When the session stops reading, the rest is discarded so
/// the reader never waits on it; the reader sees `broken` and stops.
fn feed(
    mut stdin: ChildStdin,
    head: &str,
    inbox: &Mutex<Receiver<Vec<u8>>>,
    spent: Sender<Vec<u8>>,
    broken: &AtomicBool,
) {
    let mut ok = stdin.write_all(head.as_bytes()).is_ok();
    loop {
        let next = inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv();
        let Ok(block) = next else { break };
        if ok && stdin.write_all(&block).is_err() {
            ok = false;
        }
        if !ok {
            broken.store(true, Ordering::Relaxed);
        }
        let _ = spent.send(block);
    }
}

/// The lines of `pg_restore --list` output for the entries `ids` (with their ids), and the list
/// without them.
fn split_list(list: &str, ids: &[&str]) -> (Vec<(String, String)>, String) {
    let mut entries = Vec::new();
    let mut rest = String::with_capacity(list.len());
    for line in list.lines() {
        let id = line.split(';').next().unwrap_or("").trim();
        if !line.trim_start().starts_with(';') && ids.contains(&id) {
            entries.push((id.to_string(), line.to_string()));
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    (entries, rest)
}

/// A data-only script up to the end of its first `COPY ... FROM stdin;` (the statement may
/// span lines when a name holds a newline).
fn copy_head(script: &str) -> Option<&str> {
    let start = if script.starts_with("COPY ") {
        0
    } else {
        script.find("\nCOPY ")? + 1
    };
    let end = script[start..].find(" FROM stdin;\n")? + start + " FROM stdin;\n".len();
    Some(&script[..end])
}

/// The table a COPY head loads, as the statement names it (`public.events`).
fn copy_target(head: &str) -> String {
    let Some(start) = head
        .rfind("\nCOPY ")
        .map(|p| p + 6)
        .or_else(|| head.starts_with("COPY ").then_some(5))
    else {
        return "a table".into();
    };
    let mut quoted = false;
    let name: String = head[start..]
        .chars()
        .take_while(|&c| {
            if c == '"' {
                quoted = !quoted;
            }
            quoted || c != ' '
        })
        .collect();
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_after_the_copy_statement() {
        let script = "--\n-- dump\n--\nSET client_encoding = 'UTF8';\n\n--\n-- Data for Name: t\n--\n\nCOPY public.\"a FROM b\" (id, \"x\ny\") FROM stdin;\n--\n-- complete\n";
        let head = copy_head(script).expect("a head");
        assert!(head.starts_with("--\n-- dump"));
        assert!(head.ends_with("(id, \"x\ny\") FROM stdin;\n"));
        assert_eq!(copy_target(head), "public.\"a FROM b\"");
        assert_eq!(copy_head("SET x = 1;\n-- no copy here\n"), None);
    }

    #[test]
    fn the_list_loses_only_the_named_entries() {
        let list = ";\n; Archive created at x\n3344; 0 16386 TABLE DATA public events postgres\n33440; 0 1 TABLE DATA public other postgres\n215; 1259 16386 TABLE public events postgres\n";
        let (entries, rest) = split_list(list, &["3344"]);
        assert_eq!(
            entries,
            vec![(
                "3344".to_string(),
                "3344; 0 16386 TABLE DATA public events postgres".to_string()
            )]
        );
        assert!(!rest.contains("3344; "));
        assert!(rest.contains("33440; 0 1 TABLE DATA public other"));
        assert!(rest.contains("215; 1259"));
        assert!(rest.starts_with(";\n; Archive created"));
    }
}
