//! One of the sessions that load a big table's rows during a split restore
//! ([`super::split_copy`]): its own connection to the new database, pg_restore's settings, the
//! table's COPY, and the row blocks it takes from the reader, sent in messages of [`SEND`] bytes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

use crate::error::{Error, Result};

/// A block goes to the server in COPY messages of this size. Restore wall time on a 0.95 GB
/// table, 3 runs each: 256 KiB 5.7–5.8 s, 64 KiB 5.7–6.8 s, 16 KiB 6.1–6.8 s, whole 1 MiB
/// blocks 8.4–9.0 s (the server reads a whole message before it parses its rows).
pub const SEND: usize = 256 << 10;

/// One COPY session's share of the work: connect, apply pg_restore's settings, run the COPY,
/// send the blocks it takes; end the COPY when the rows run out, or abort it when the reader
/// `failed`. When the session cannot send, the rest is discarded so the reader never waits on
/// it; the reader sees `broken` and stops.
pub(super) struct Feed<'a> {
    /// The new database.
    pub target: &'a PgConnectOptions,
    /// pg_restore's session settings, run first.
    pub settings: &'a str,
    /// The table's `COPY ... FROM stdin`.
    pub statement: &'a str,
    /// Row blocks, shared by all the sessions of a table.
    pub inbox: &'a Mutex<Receiver<Vec<u8>>>,
    /// Set by a session that can no longer send.
    pub broken: &'a AtomicBool,
    /// Set by the reader when the COPY must be aborted (damage, cancel).
    pub failed: &'a AtomicBool,
}

impl Feed<'_> {
    pub fn run(self, spent: Sender<Vec<u8>>) -> Result<()> {
        let opened = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting a COPY session", e))
            .and_then(|rt| Ok((rt.block_on(self.open())?, rt)));
        let (mut conn, rt) = match opened {
            Ok(x) => x,
            Err(e) => {
                self.drain(&spent);
                return Err(e);
            }
        };
        let loaded = self.load(&rt, &mut conn, &spent);
        let _ = rt.block_on(conn.close());
        loaded
    }

    fn load(
        &self,
        rt: &tokio::runtime::Runtime,
        conn: &mut PgConnection,
        spent: &Sender<Vec<u8>>,
    ) -> Result<()> {
        let mut copy = match rt.block_on(conn.copy_in_raw(self.statement)) {
            Ok(c) => c,
            Err(e) => {
                self.drain(spent);
                return Err(e.into());
            }
        };
        let mut sent: Result<()> = Ok(());
        while let Some(block) = self.next() {
            if sent.is_ok() {
                sent = rt
                    .block_on(async {
                        for part in block.chunks(SEND) {
                            copy.send(part).await?;
                        }
                        Ok::<(), sqlx::Error>(())
                    })
                    .map_err(Error::from);
                if sent.is_err() {
                    self.broken.store(true, Ordering::Relaxed);
                }
            }
            let _ = spent.send(block);
        }
        let end = if sent.is_err() || self.failed.load(Ordering::SeqCst) {
            rt.block_on(copy.abort("pgsteward stopped the restore"))
                .map_err(Error::from)
        } else {
            rt.block_on(copy.finish()).map(|_| ()).map_err(Error::from)
        };
        sent.and(end)
    }

    async fn open(&self) -> Result<PgConnection> {
        let mut conn = PgConnection::connect_with(self.target).await?;
        sqlx::raw_sql(self.settings).execute(&mut conn).await?;
        Ok(conn)
    }

    fn next(&self) -> Option<Vec<u8>> {
        self.inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv()
            .ok()
    }

    /// Take the blocks without sending them, so the reader is never held up by this session.
    fn drain(&self, spent: &Sender<Vec<u8>>) {
        self.broken.store(true, Ordering::Relaxed);
        while let Some(block) = self.next() {
            let _ = spent.send(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, sync_channel};

    use super::*;

    #[test]
    fn a_session_that_cannot_connect_takes_its_blocks_so_the_reader_never_waits() {
        // Nothing listens on port 1: the session fails to connect.
        let target = PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(1);
        let (blocks, inbox) = sync_channel::<Vec<u8>>(1);
        let (spent, recycled) = channel::<Vec<u8>>();
        let inbox = Mutex::new(inbox);
        let (broken, failed) = (AtomicBool::new(false), AtomicBool::new(false));
        let ended = std::thread::scope(|s| {
            let feed = Feed {
                target: &target,
                settings: "",
                statement: "COPY t FROM stdin",
                inbox: &inbox,
                broken: &broken,
                failed: &failed,
            };
            let session = s.spawn(move || feed.run(spent));
            for _ in 0..4 {
                blocks.send(b"1\n".to_vec()).unwrap();
            }
            drop(blocks);
            session.join().unwrap()
        });
        assert!(ended.is_err());
        assert!(broken.load(Ordering::SeqCst));
        assert_eq!(recycled.iter().count(), 4);
    }
}
