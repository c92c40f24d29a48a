//! Moving one object's bytes to and from S3: a multipart upload fed by `write`, and a streamed
//! download that resumes with a ranged request when the connection breaks. Both drive the async
//! client from the blocking threads of the backup pipeline.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
};

use super::{block, io_err, storage_error};
use crate::backup::repo::ObjectWriter;
use crate::error::Result;

/// Multipart upload fed by `write`: a part goes up each time `part_size` bytes are buffered.
/// Objects smaller than one part are sent with a single put on commit. Dropped without a
/// commit, the upload is aborted and nothing appears.
pub(super) struct S3Writer {
    store: Arc<AmazonS3>,
    path: Path,
    desc: String,
    part_size: usize,
    buf: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    committed: bool,
}

impl S3Writer {
    pub(super) fn new(store: Arc<AmazonS3>, path: Path, desc: String, part_size: usize) -> Self {
        S3Writer {
            store,
            path,
            desc,
            part_size,
            buf: Vec::new(),
            upload: None,
            committed: false,
        }
    }

    fn send_part(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let up = block(self.store.put_multipart(&self.path))
                .map_err(|e| storage_error(&self.desc, "multipart upload start", &e))?;
            self.upload = Some(up);
        }
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        let fut = self
            .upload
            .as_mut()
            .expect("upload started")
            .put_part(PutPayload::from(part));
        block(fut).map_err(|e| storage_error(&self.desc, "part upload", &e))
    }
}

impl Write for S3Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.part_size);
        }
        let n = data.len().min(self.part_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.part_size {
            self.send_part().map_err(io_err)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn commit(mut self: Box<Self>) -> Result<()> {
        match self.upload.is_some() {
            false => {
                let body = PutPayload::from(std::mem::take(&mut self.buf));
                block(self.store.put(&self.path, body))
                    .map_err(|e| storage_error(&self.desc, "upload", &e))?;
            }
            true => {
                if !self.buf.is_empty() {
                    self.send_part()?;
                }
                let up = self.upload.as_mut().expect("upload started");
                block(up.complete())
                    .map_err(|e| storage_error(&self.desc, "multipart upload completion", &e))?;
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Some(mut up) = self.upload.take() {
            // Best effort: a service that is gone keeps the parts until its own cleanup.
            let _ =
                block(
                    async move { tokio::time::timeout(Duration::from_secs(10), up.abort()).await },
                );
        }
    }
}

/// Streamed download that resumes with a ranged request when the connection breaks.
pub(super) struct S3Reader {
    store: Arc<AmazonS3>,
    path: Path,
    desc: String,
    size: u64,
    pos: u64,
    cur: Bytes,
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
}

impl S3Reader {
    /// Reads `size` bytes of `path`, starting with the response of a download already begun.
    pub(super) fn new(
        store: Arc<AmazonS3>,
        path: Path,
        desc: String,
        size: u64,
        stream: BoxStream<'static, object_store::Result<Bytes>>,
    ) -> Self {
        S3Reader {
            store,
            path,
            desc,
            size,
            pos: 0,
            cur: Bytes::new(),
            stream: Some(stream),
        }
    }

    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let mut attempts = 0;
        loop {
            if self.stream.is_none() {
                let opts = GetOptions {
                    range: Some(GetRange::Offset(self.pos)),
                    ..Default::default()
                };
                let res = block(self.store.get_opts(&self.path, opts))
                    .map_err(|e| storage_error(&self.desc, "download", &e))?;
                self.stream = Some(res.into_stream());
            }
            let stream = self.stream.as_mut().expect("stream open");
            match block(stream.next()) {
                Some(Ok(b)) => return Ok(Some(b)),
                None => return Ok(None),
                Some(Err(e)) => {
                    self.stream = None;
                    attempts += 1;
                    if attempts > 3 {
                        return Err(storage_error(&self.desc, "download", &e));
                    }
                    std::thread::sleep(Duration::from_millis(200 * attempts));
                }
            }
        }
    }
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.pos >= self.size {
                return Ok(0);
            }
            match self.next_chunk().map_err(io_err)? {
                Some(b) => self.cur = b,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} ended early", self.path),
                    ))
                }
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        self.pos += n as u64;
        Ok(n)
    }
}
