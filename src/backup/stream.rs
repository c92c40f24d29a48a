//! Storing a directory-format dump while pg_dump is still writing it.
//!
//! Waiting for pg_dump to finish before compressing, sealing and storing leaves the CPUs idle
//! for half of a backup. Instead every file of the dump folder is followed from the moment
//! pg_dump creates it: its bytes go through compress → seal → hash → storage as they are
//! written, and the object is finished only once pg_dump has closed the file.
//!
//! How "closed" is known: an inotify watch on the (new, empty, private) dump folder reports
//! `IN_CLOSE_WRITE` for each file when pg_dump closes it. pg_dump writes each file of a
//! directory archive once, sequentially, and never reopens it (the data files `NNNN.dat` one per
//! table by a worker, `toc.dat` by the leader last), so after its close event a file is
//! complete. A follower reads up to the end of what is written, and only when the close was
//! seen *before* that read does it finish the object. If the kernel's event queue overflows, or
//! anything else is missed, files are finished when pg_dump exits (all of them are closed
//! then). After pg_dump succeeded, the folder is listed again: a file never followed is stored
//! then, and every stored object's size is compared with its file's final size (a mismatch is
//! stored again), so no object ever holds a file pg_dump was still writing.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use sha2::{Digest, Sha256};

use super::directory::{read_into_object, Sealer, Upload, DUMP_PREFIX};
use super::logical::{collect_stderr, tool_failed, ToolInvocation};
use super::pipeline::THREADED_MIN;
use super::repo::ObjectEntry;
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, Reporter};

const CHUNK: usize = 256 * 1024;
const TICK: Duration = Duration::from_millis(50);

#[derive(Default)]
struct State {
    /// Files created and not yet taken by a follower.
    queue: VecDeque<String>,
    /// Every file ever queued.
    seen: HashSet<String>,
    /// Files pg_dump has closed.
    closed: HashSet<String>,
    /// pg_dump has exited: every file is closed, and no new one comes.
    exited: bool,
    /// Names pg_dump should never have made.
    unexpected: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, st: &mut State, name: String) {
        if !super::directory::safe_file_name(&name) {
            st.unexpected.push(name);
        } else if st.seen.insert(name.clone()) {
            st.queue.push_back(name);
        }
    }
}

fn upload_for(dir: &Path, name: &str, sealer: &Sealer<'_>) -> Upload {
    Upload {
        path: dir.join(name),
        name: format!("{DUMP_PREFIX}{name}{}.sealed", sealer.compression.suffix()),
        content: if name == "toc.dat" {
            "pg_dump directory archive: table of contents".into()
        } else {
            "pg_dump directory archive: data file".into()
        },
    }
}

fn cancelled() -> Error {
    Error::new(ErrorCode::Cancelled, "The backup was cancelled.")
}

/// Follow one file until pg_dump closed it, storing it as one object.
fn follow(
    shared: &Shared,
    file_name: &str,
    up: &Upload,
    sealer: &Sealer<'_>,
    total: &AtomicU64,
    stop: &AtomicBool,
) -> Result<ObjectEntry> {
    let mut file = fs::File::open(&up.path).map_err(|e| Error::io("reading a dump file", e))?;
    let is_closed = |st: &State| st.exited || st.closed.contains(file_name);
    let threaded = {
        let st = shared.lock();
        !is_closed(&st)
    } || file.metadata().map(|m| m.len()).unwrap_or(0) >= THREADED_MIN;
    let mut enc = sealer.open(&up.name, threaded)?;
    let mut hasher = Sha256::new();
    let mut plain = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        // Seen closed before reading to the end: then the end is the file's end.
        let closed = is_closed(&shared.lock());
        read_into_object(
            &mut file,
            &mut enc,
            &mut hasher,
            &mut plain,
            total,
            stop,
            &mut buf,
        )?;
        if closed {
            break;
        }
        let st = shared.lock();
        if !is_closed(&st) {
            let _ = shared.changed.wait_timeout(st, TICK);
        }
    }
    sealer.finish(enc, up.name.clone(), up.content.clone(), plain, hasher)
}

fn read_events(ino: &Inotify, shared: &Shared) {
    let Ok(events) = ino.read_events() else {
        return; // EAGAIN: nothing new
    };
    let mut st = shared.lock();
    for ev in events {
        if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            // Some events are lost: files not seen are found when pg_dump exits.
            continue;
        }
        let Some(name) = ev.name.map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if ev.mask.contains(AddWatchFlags::IN_CREATE) {
            shared.add(&mut st, name.clone());
        }
        if ev.mask.contains(AddWatchFlags::IN_CLOSE_WRITE) {
            shared.add(&mut st, name.clone());
            st.closed.insert(name);
        }
    }
    drop(st);
    shared.changed.notify_all();
}

fn kill_group(child: &mut std::process::Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// Run pg_dump into `out` (created here; it must not exist) and store every file of it as it
/// is written, `jobs` files at a time. Returns the objects, sorted by name.
pub fn dump_and_store(
    tool: &ToolInvocation,
    args: &[String],
    out: &Path,
    sealer: &Sealer<'_>,
    jobs: usize,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<Vec<ObjectEntry>> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(out)
        .map_err(|e| Error::io("creating the dump folder", e))?;
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| Error::io("watching the dump folder", e.into()))?;
    ino.add_watch(
        out,
        AddWatchFlags::IN_CREATE | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_ONLYDIR,
    )
    .map_err(|e| Error::io("watching the dump folder", e.into()))?;

    let mut cmd: Command = tool.command();
    cmd.args(args).process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(
            ErrorCode::ToolFailed,
            format!("could not start {}: {e}", tool.program.display()),
        )
    })?;
    let stderr = collect_stderr(&mut child);

    let shared = Shared {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    };
    let total = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let done: Mutex<Vec<ObjectEntry>> = Mutex::new(Vec::new());

    let outcome: Result<()> = std::thread::scope(|s| {
        let worker = || loop {
            let name = {
                let mut st = shared.lock();
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(n) = st.queue.pop_front() {
                        break n;
                    }
                    if st.exited {
                        return;
                    }
                    st = shared
                        .changed
                        .wait_timeout(st, TICK)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            };
            let up = upload_for(out, &name, sealer);
            match follow(&shared, &name, &up, sealer, &total, &stop) {
                Ok(e) => done
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(e),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    let mut f = failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if f.as_ref()
                        .is_none_or(|old| old.code == ErrorCode::Cancelled)
                    {
                        *f = Some(e);
                    }
                    shared.changed.notify_all();
                    return;
                }
            }
        };
        let workers: Vec<_> = (0..jobs.max(1)).map(|_| s.spawn(worker)).collect();

        // pg_dump runs; its files are followed as they appear.
        let status = loop {
            read_events(&ino, &shared);
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(Error::io("waiting for pg_dump", e)),
            }
            if cancel.is_cancelled() || stop.load(Ordering::Relaxed) {
                kill_group(&mut child);
                stop.store(true, Ordering::Relaxed);
                break Err(cancelled());
            }
            rep.bytes(total.load(Ordering::Relaxed));
            std::thread::sleep(TICK);
        };
        let text = stderr.join().unwrap_or_default();
        rep.stderr("pg_dump", &text);
        let result = match status {
            Ok(st) if st.success() => {
                read_events(&ino, &shared);
                // Anything the events missed, then no more files: every one is closed now.
                let listed = fs::read_dir(out).map_err(|e| Error::io("reading the dump folder", e));
                let mut stt = shared.lock();
                let r = listed.and_then(|rd| {
                    for e in rd {
                        let e = e.map_err(|e| Error::io("reading the dump folder", e))?;
                        let name = e.file_name().to_string_lossy().into_owned();
                        let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
                        if is_file {
                            shared.add(&mut stt, name);
                        } else {
                            stt.unexpected.push(name);
                        }
                    }
                    Ok(())
                });
                stt.exited = true;
                drop(stt);
                shared.changed.notify_all();
                r
            }
            Ok(_) => Err(tool_failed("pg_dump", &text)),
            Err(e) => Err(e),
        };
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
            let mut stt = shared.lock();
            stt.exited = true;
            drop(stt);
            shared.changed.notify_all();
        }
        while workers.iter().any(|w| !w.is_finished()) {
            if cancel.is_cancelled() {
                stop.store(true, Ordering::Relaxed);
            }
            rep.bytes(total.load(Ordering::Relaxed));
            std::thread::sleep(TICK);
        }
        result
    });
    rep.bytes(total.load(Ordering::Relaxed));
    let failed = failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match (outcome, failed) {
        // A real error of pg_dump or of storing wins over the cancellations it caused.
        (Err(e), Some(f)) if e.code == ErrorCode::Cancelled && !cancel.is_cancelled() => {
            return Err(f)
        }
        (Err(e), _) => return Err(e),
        (Ok(()), Some(f)) => return Err(f),
        (Ok(()), None) => {}
    }
    if cancel.is_cancelled() {
        return Err(cancelled());
    }
    let st = shared
        .state
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(name) = st.unexpected.first() {
        return Err(Error::new(
            ErrorCode::ToolFailed,
            format!("pg_dump left an unexpected entry {name:?} in its folder"),
        ));
    }
    let mut objects = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The safety net: every object holds its whole file.
    for obj in objects.iter_mut() {
        let file = obj
            .name
            .strip_prefix(DUMP_PREFIX)
            .and_then(|n| n.strip_suffix(".sealed"))
            .and_then(|n| n.strip_suffix(sealer.compression.suffix()))
            .unwrap_or_default()
            .to_string();
        let len = fs::metadata(out.join(&file))
            .map_err(|e| Error::io("reading the dump folder", e))?
            .len();
        if len != obj.plaintext_bytes {
            tracing::warn!("dump file {file} grew after it was stored; storing it again");
            let again = AtomicU64::new(0);
            *obj = sealer.store(&upload_for(out, &file, sealer), &again, &stop)?;
        }
    }
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(objects)
}
