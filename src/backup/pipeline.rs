//! Two-stage pipelines that spread one large object's work over two threads.
//!
//! A backup object passes through compression, AES-256-GCM sealing and two SHA-256 digests
//! (plaintext and stored bytes). One thread doing all of it is the bottleneck of a database
//! whose size sits in one big table: its dump file is one object. So the work is split where
//! it splits cleanly:
//! - writing ([`SealPipe`]): the caller compresses and hashes the plaintext; a second thread
//!   seals the compressed bytes, hashes what is stored and writes it to the storage;
//! - reading ([`Prefetch`]): a second thread reads from the storage and authenticates and
//!   decrypts the segments (authentication stands in for a digest of the stored bytes); the
//!   caller decompresses and hashes the plaintext.
//!
//! The stages hand over chunks through a bounded channel (a few MiB in flight). Errors keep
//! their `io::Error` form, so the storage's own errors and authentication failures are told
//! apart exactly as without the pipeline. Small objects skip the second thread.

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::crypto::{OpenReader, SealWriter};
use super::repo::ObjectWriter;

/// Objects at least this large get a second thread.
pub const THREADED_MIN: u64 = 4 * 1024 * 1024;
/// Bytes handed over at once, and chunks in flight.
const HANDOFF: usize = 512 * 1024;
const IN_FLIGHT: usize = 8;

type Sealed = SealWriter<Box<dyn ObjectWriter>>;
/// What sealing an object returns: the storage's writer (to commit), stored bytes, SHA-256.
pub type SealedObject = (Box<dyn ObjectWriter>, u64, [u8; 32]);

enum ToSealer {
    Data(Vec<u8>),
    Finish,
}

/// A writer that seals what is written to it, on a second thread for large objects.
pub struct SealPipe(SealInner);

enum SealInner {
    Direct(Box<Sealed>),
    Threaded {
        tx: Option<SyncSender<ToSealer>>,
        buf: Vec<u8>,
        worker: Option<JoinHandle<io::Result<SealedObject>>>,
    },
}

impl SealPipe {
    /// `threaded`: hand the sealing to a second thread (worth it above [`THREADED_MIN`]).
    pub fn new(sealed: Sealed, threaded: bool) -> SealPipe {
        if !threaded {
            return SealPipe(SealInner::Direct(Box::new(sealed)));
        }
        let (tx, rx) = sync_channel::<ToSealer>(IN_FLIGHT);
        let worker = std::thread::spawn(move || {
            let mut sealed = sealed;
            for msg in rx {
                match msg {
                    ToSealer::Data(d) => sealed.write_all(&d)?,
                    ToSealer::Finish => return sealed.finish(),
                }
            }
            // The writer was dropped without finishing (a failure or a cancel): the object
            // is left uncommitted.
            Err(io::Error::other("the object was abandoned"))
        });
        SealPipe(SealInner::Threaded {
            tx: Some(tx),
            buf: Vec::with_capacity(HANDOFF),
            worker: Some(worker),
        })
    }

    /// The sealing thread's error, after it stopped.
    fn worker_error(worker: &mut Option<JoinHandle<io::Result<SealedObject>>>) -> io::Error {
        match worker.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the sealing thread stopped"),
        }
    }

    /// Seal the last segment; returns the storage's writer, stored bytes and their SHA-256.
    pub fn finish(self) -> io::Result<SealedObject> {
        match self.0 {
            SealInner::Direct(s) => s.finish(),
            SealInner::Threaded {
                mut tx,
                mut buf,
                mut worker,
            } => {
                let sender = tx.take().expect("sender present until finished");
                let rest = std::mem::take(&mut buf);
                if (!rest.is_empty() && sender.send(ToSealer::Data(rest)).is_err())
                    || sender.send(ToSealer::Finish).is_err()
                {
                    return Err(Self::worker_error(&mut worker));
                }
                drop(sender);
                match worker.take().map(JoinHandle::join) {
                    Some(Ok(r)) => r,
                    _ => Err(io::Error::other("the sealing thread stopped")),
                }
            }
        }
    }
}

impl Write for SealPipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            SealInner::Direct(s) => s.write(data),
            SealInner::Threaded { tx, buf, worker } => {
                buf.extend_from_slice(data);
                if buf.len() >= HANDOFF {
                    let chunk = std::mem::replace(buf, Vec::with_capacity(HANDOFF));
                    let sent = tx
                        .as_ref()
                        .is_some_and(|t| t.send(ToSealer::Data(chunk)).is_ok());
                    if !sent {
                        return Err(Self::worker_error(worker));
                    }
                }
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum FromOpener {
    Data(Vec<u8>),
    End(u64),
    Failed(io::Error),
}

/// SHA-256 of a stream, taken on its own thread for large objects: reading an object back is
/// three stages (authenticate, decompress, hash) of which hashing the plaintext is the second
/// heaviest, so it gets a thread of its own. Buffers go back to the caller for reuse.
pub struct Digester(DigestInner);

enum DigestInner {
    Direct(Sha256),
    Threaded {
        tx: SyncSender<Vec<u8>>,
        spare: Receiver<Vec<u8>>,
        buf: Vec<u8>,
        worker: JoinHandle<[u8; 32]>,
    },
}

impl Digester {
    pub fn new(threaded: bool) -> Digester {
        if !threaded {
            return Digester(DigestInner::Direct(Sha256::new()));
        }
        let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (back, spare) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
        let worker = std::thread::spawn(move || {
            let mut h = Sha256::new();
            for mut chunk in rx {
                h.update(&chunk);
                chunk.clear();
                let _ = back.try_send(chunk);
            }
            h.finalize().into()
        });
        Digester(DigestInner::Threaded {
            tx,
            spare,
            buf: Vec::with_capacity(HANDOFF),
            worker,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            DigestInner::Direct(h) => h.update(data),
            DigestInner::Threaded { tx, spare, buf, .. } => {
                buf.extend_from_slice(data);
                if buf.len() >= HANDOFF {
                    let next = spare
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(HANDOFF));
                    // The thread only stops when the sender is dropped.
                    let _ = tx.send(std::mem::replace(buf, next));
                }
            }
        }
    }

    pub fn finish(self) -> [u8; 32] {
        match self.0 {
            DigestInner::Direct(h) => h.finalize().into(),
            DigestInner::Threaded {
                tx, buf, worker, ..
            } => {
                let _ = tx.send(buf);
                drop(tx);
                worker.join().expect("the hashing thread does not panic")
            }
        }
    }
}

type Opener = OpenReader<Box<dyn Read + Send>>;

/// A reader of an object's authenticated plaintext (still compressed), decrypted ahead on a
/// second thread for large objects. It is a `BufRead`, so the decompressor reads the handed-over
/// chunks in place; spent chunks go back to the thread for reuse.
pub struct Prefetch(PrefetchInner);

enum PrefetchInner {
    Direct(Box<Opener>),
    Threaded {
        rx: Receiver<FromOpener>,
        spent: SyncSender<Vec<u8>>,
        cur: Vec<u8>,
        pos: usize,
        end: Option<u64>,
    },
}

impl Prefetch {
    pub fn new(mut opener: Opener, threaded: bool) -> Prefetch {
        if !threaded {
            return Prefetch(PrefetchInner::Direct(Box::new(opener)));
        }
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let (spent, reuse) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
        std::thread::spawn(move || loop {
            let mut chunk = reuse
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(HANDOFF));
            chunk.clear();
            while chunk.len() < HANDOFF {
                match opener.fill_buf() {
                    Ok([]) => break,
                    Ok(plain) => {
                        let n = plain.len().min(HANDOFF - chunk.len());
                        chunk.extend_from_slice(&plain[..n]);
                        opener.consume(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(FromOpener::Failed(e));
                        return;
                    }
                }
            }
            if chunk.is_empty() {
                let _ = tx.send(FromOpener::End(opener.stored_len()));
                return;
            }
            if tx.send(FromOpener::Data(chunk)).is_err() {
                return; // the reader was dropped
            }
        });
        Prefetch(PrefetchInner::Threaded {
            rx,
            spent,
            cur: Vec::new(),
            pos: 0,
            end: None,
        })
    }

    /// Stored bytes read so far (the whole object's size once drained).
    pub fn stored_len(&self) -> u64 {
        match &self.0 {
            PrefetchInner::Direct(o) => o.stored_len(),
            PrefetchInner::Threaded { end, .. } => end.unwrap_or(0),
        }
    }
}

impl BufRead for Prefetch {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match &mut self.0 {
            PrefetchInner::Direct(o) => o.fill_buf(),
            PrefetchInner::Threaded {
                rx,
                spent,
                cur,
                pos,
                end,
            } => {
                while *pos >= cur.len() {
                    if end.is_some() {
                        return Ok(&[]);
                    }
                    match rx.recv() {
                        Ok(FromOpener::Data(d)) => {
                            let _ = spent.try_send(std::mem::replace(cur, d));
                            *pos = 0;
                        }
                        Ok(FromOpener::End(n)) => *end = Some(n),
                        Ok(FromOpener::Failed(e)) => return Err(e),
                        Err(_) => return Err(io::Error::other("the reading thread stopped")),
                    }
                }
                Ok(&cur[*pos..])
            }
        }
    }

    fn consume(&mut self, n: usize) {
        match &mut self.0 {
            PrefetchInner::Direct(o) => o.consume(n),
            PrefetchInner::Threaded { pos, .. } => *pos += n,
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        super::crypto::read_buffered(self, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::crypto::random_key;
    use std::sync::{Arc, Mutex};

    /// An object writer into shared memory.
    struct Mem(Arc<Mutex<Vec<u8>>>);
    impl Write for Mem {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl ObjectWriter for Mem {
        fn commit(self: Box<Self>) -> crate::error::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn both_pipelines_match_the_direct_path() {
        let key = random_key();
        let data: Vec<u8> = (0..3_000_001u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut outs = Vec::new();
        for threaded in [false, true] {
            let store = Arc::new(Mutex::new(Vec::new()));
            let sealed = SealWriter::new(
                Box::new(Mem(store.clone())) as Box<dyn ObjectWriter>,
                &key,
                b"aad".to_vec(),
            )
            .unwrap();
            let mut pipe = SealPipe::new(sealed, threaded);
            for c in data.chunks(100_003) {
                pipe.write_all(c).unwrap();
            }
            let (_, n, digest) = pipe.finish().unwrap();
            let stored = store.lock().unwrap().clone();
            assert_eq!(n as usize, stored.len());
            for read_threaded in [false, true] {
                let opener = OpenReader::new(
                    Box::new(io::Cursor::new(stored.clone())) as Box<dyn Read + Send>,
                    &key,
                    b"aad".to_vec(),
                )
                .unwrap();
                let mut r = Prefetch::new(opener, read_threaded);
                let mut back = Vec::new();
                r.read_to_end(&mut back).unwrap();
                assert_eq!(back, data);
                assert_eq!(r.stored_len(), n);
                assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&stored)));
            }
            outs.push(stored.len());
        }
        assert_eq!(outs[0], outs[1]);
    }

    #[test]
    fn the_threaded_digest_equals_the_direct_one() {
        let data: Vec<u8> = (0..2_500_003u32).map(|i| (i * 13 % 251) as u8).collect();
        for threaded in [false, true] {
            let mut d = Digester::new(threaded);
            for c in data.chunks(70_001) {
                d.update(c);
            }
            assert_eq!(
                d.finish(),
                <[u8; 32]>::from(Sha256::digest(&data)),
                "{threaded}"
            );
        }
    }

    #[test]
    fn a_damaged_object_fails_through_the_thread_as_it_does_directly() {
        let key = random_key();
        let mut w = SealWriter::new(Vec::new(), &key, b"x".to_vec()).unwrap();
        w.write_all(&vec![1u8; 300_000]).unwrap();
        let (mut stored, _, _) = w.finish().unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        let opener = OpenReader::new(
            Box::new(io::Cursor::new(stored)) as Box<dyn Read + Send>,
            &key,
            b"x".to_vec(),
        )
        .unwrap();
        let err = Prefetch::new(opener, true)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(crate::backup::crypto::is_auth_error(&err), "{err}");
    }
}
