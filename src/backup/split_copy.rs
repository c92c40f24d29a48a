//! Big tables loaded over several COPY sessions at once.
//!
//! pg_restore loads each table with one COPY, so while the largest table loads (often most of a
//! database) one core works and the others wait. For a directory-format backup restored into a
//! new database with several jobs, [`super::restore::prepare`] leaves the data of tables of at
//! least [`SPLIT_MIN`] bytes in the repository. Here pg_restore creates the schema (pre-data);
//! then each such table's data is read from the repository (every segment authenticated before
//! a byte of it is passed on), cut at row boundaries into blocks and fed to N sessions of
//! pgsteward's own that each run the table's own COPY; its size and SHA-256 are checked before
//! the sessions may end (a mismatch aborts their COPY, so nothing of the table commits). Then
//! pg_restore loads the other tables and builds indexes and constraints (post-data), N jobs
//! each. The caller drops the new database when anything fails.
//!
//! The session settings and the COPY statement are pg_restore's own: it prints them for the
//! table from a copy of the table of contents beside an empty data file. Rows keep their order
//! within a block (about 1 MiB); blocks loaded by different sessions interleave in the table.
//! The rows go straight from this process to the server: no client program in between, which
//! spares a copy through a pipe and a client's line-by-line reading of every row.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use sqlx::postgres::PgConnectOptions;

use super::copy_session::Feed;
use super::directory::{dump_file, render, restore_args, run_tool, MAX_JOBS};
use super::fetch::check_end;
use super::logical::{corrupt, map_object_err, open_plaintext};
use super::logical::{RestoreMode, ToolInvocation};
use super::pipeline::Digester;
use super::repo::{Manifest, ObjectEntry, Storage};
use crate::conn::session::MARK;
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
    /// The new database, as pgsteward's own sessions reach it.
    pub target: &'a PgConnectOptions,
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
    ) -> Result<Vec<(String, Head)>> {
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
            let head = Head::parse(&text).ok_or_else(|| {
                Error::new(
                    ErrorCode::ToolFailed,
                    format!("pg_restore printed no COPY statement for entry {toc}"),
                )
            })?;
            heads.push((toc.clone(), head));
        }
        Ok(heads)
    }

    /// Load one table's data over `sessions` sessions of pgsteward's own.
    fn load_table(
        &self,
        obj: &ObjectEntry,
        head: &Head,
        sessions: usize,
        rep: &mut Reporter,
        cancel: &CancelToken,
    ) -> Result<()> {
        rep.phase(&format!(
            "loading {} over {sessions} sessions",
            head.target()
        ));
        rep.total(Some(obj.plaintext_bytes), false);
        let statement = &format!("{MARK} {}", head.copy);
        rep.command(&format!(
            "{} (x{sessions} sessions, each with its share of the rows)",
            statement.trim_end()
        ));
        let (blocks, inbox) = sync_channel::<Vec<u8>>(sessions * 2);
        let (spent, recycled) = channel::<Vec<u8>>();
        let inbox = Mutex::new(inbox);
        let broken = AtomicBool::new(false);
        let failed = AtomicBool::new(false);
        let (pumped, ended) = std::thread::scope(|s| {
            let feeders: Vec<_> = (0..sessions)
                .map(|_| {
                    let spent = spent.clone();
                    let feed = Feed {
                        target: self.target,
                        settings: &head.settings,
                        statement,
                        inbox: &inbox,
                        broken: &broken,
                        failed: &failed,
                    };
                    s.spawn(move || feed.run(spent))
                })
                .collect();
            drop(spent);
            let r = self.pump(obj, &blocks, &recycled, &broken, rep, cancel);
            if r.is_err() {
                // Before the sessions see the end of their rows: their COPY is aborted and
                // nothing of the table commits.
                failed.store(true, Ordering::SeqCst);
            }
            drop(blocks);
            let ended: Vec<Result<()>> = feeders
                .into_iter()
                .map(|f| {
                    f.join().unwrap_or_else(|_| {
                        Err(Error::internal("a COPY session panicked".to_string()))
                    })
                })
                .collect();
            (r, ended)
        });
        let failed_session = ended.into_iter().find_map(|r| r.err());
        match (pumped, failed_session) {
            // A damaged backup or a cancel says so, whatever the aborted sessions reported.
            (Err(e), _) if e.code != ErrorCode::ToolFailed => Err(e),
            (_, Some(e)) => Err(e),
            (r, None) => r,
        }
    }

    /// Read the table's plaintext into row-aligned blocks for the sessions; check its size and
    /// digest at the end, while the sessions still wait for more (their COPY not yet ended).
    fn pump(
        &self,
        obj: &ObjectEntry,
        blocks: &SyncSender<Vec<u8>>,
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
                // The last block goes out only once the whole table checked out. The data file
                // ends with an end-of-data line (`\.`) and blank lines, which the sessions do
                // not send: each ends its COPY itself.
                check_end(id, obj, &mut dec, plain, hasher)?;
                let last = match pending.take() {
                    Some(mut held) => {
                        held.extend_from_slice(&block);
                        held
                    }
                    None => block,
                };
                return send(blocks, without_end_marker(last));
            }
            if let Some(held) = pending.replace(block) {
                send(blocks, held)?;
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

/// A data file's last block without its end-of-data line (`\.` alone on a line) and what
/// follows it.
fn without_end_marker(mut block: Vec<u8>) -> Vec<u8> {
    let body = block.iter().rposition(|&b| b != b'\n').map_or(0, |p| p + 1);
    if block[..body].ends_with(b"\\.") && (body == 2 || block[body - 3] == b'\n') {
        block.truncate(body - 2);
    }
    block
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

/// What a session runs before a big table's rows, from pg_restore's data-only script for it.
struct Head {
    /// The script's session settings, psql meta-commands (such as `\restrict`) left out.
    settings: String,
    /// The script's first `COPY ... FROM stdin;` (it may span lines when a name holds a
    /// newline).
    copy: String,
}

impl Head {
    fn parse(script: &str) -> Option<Head> {
        let start = if script.starts_with("COPY ") {
            0
        } else {
            script.find("\nCOPY ")? + 1
        };
        let end = script[start..].find(" FROM stdin;\n")? + start + " FROM stdin;\n".len();
        let settings = script[..start]
            .lines()
            .filter(|l| !l.starts_with('\\'))
            .collect::<Vec<_>>()
            .join("\n");
        Some(Head {
            settings,
            copy: script[start..end].to_string(),
        })
    }

    /// The table the COPY loads, as the statement names it (`public.events`).
    fn target(&self) -> String {
        let mut quoted = false;
        self.copy["COPY ".len()..]
            .chars()
            .take_while(|&c| {
                if c == '"' {
                    quoted = !quoted;
                }
                quoted || c != ' '
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_after_the_copy_statement() {
        let script = "--\n-- dump\n--\nSET client_encoding = 'UTF8';\n\n--\n-- Data for Name: t\n--\n\nCOPY public.\"a FROM b\" (id, \"x\ny\") FROM stdin;\n--\n-- complete\n";
        let head = Head::parse(script).expect("a head");
        assert!(head.settings.starts_with("--\n-- dump"));
        assert!(head.copy.ends_with("(id, \"x\ny\") FROM stdin;\n"));
        assert_eq!(head.target(), "public.\"a FROM b\"");
        assert!(Head::parse("SET x = 1;\n-- no copy here\n").is_none());
    }

    #[test]
    fn settings_run_without_meta_commands_before_the_copy() {
        let head = "\\restrict abc\n--\nSET client_encoding = 'UTF8';\nSELECT 1;\n\nCOPY public.\"x\nCOPY y\" (a) FROM stdin;\n";
        let head = Head::parse(head).expect("a head");
        assert_eq!(
            head.settings,
            "--\nSET client_encoding = 'UTF8';\nSELECT 1;\n"
        );
        assert_eq!(head.copy, "COPY public.\"x\nCOPY y\" (a) FROM stdin;\n");
        let bare = Head::parse("COPY t (a) FROM stdin;\n").expect("a head");
        assert_eq!(bare.settings, "");
    }

    #[test]
    fn the_end_of_data_line_is_left_out_and_rows_are_kept() {
        let last = |b: &[u8]| without_end_marker(b.to_vec());
        assert_eq!(last(b"1\ta\n2\tb\n\\.\n\n\n"), b"1\ta\n2\tb\n");
        assert_eq!(last(b"\\.\n\n"), b"");
        // A row ending in an escaped backslash and a dot is data, not the end marker.
        assert_eq!(last(b"1\tx\\.\n"), b"1\tx\\.\n");
        assert_eq!(last(b"1\ta\n"), b"1\ta\n");
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
