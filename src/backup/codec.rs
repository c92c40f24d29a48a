//! Compression of backup objects: zstd (the default), gzip or none.
//!
//! Each stored object records its codec in the manifest, so a repository can mix them and a
//! reader picks the decoder per object. The encoder sits between the plaintext and the sealing
//! writer; the decoder between the opening reader and the consumer.

use std::io::{self, BufRead, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How an object's plaintext is compressed before it is sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// zstd, level [`ZSTD_LEVEL`].
    #[default]
    Zstd,
    /// gzip (deflate), level 6.
    Gzip,
    /// Stored as is (still sealed).
    None,
}

impl Compression {
    /// The codec name written in the manifest.
    pub fn codec(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }

    /// What object names carry before `.sealed`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::None => "",
        }
    }

    pub fn from_codec(codec: &str) -> Option<Compression> {
        codec.parse().ok()
    }

    /// `BACKUP_COMPRESSION` (zstd, gzip or none), zstd when unset.
    pub fn from_env() -> Result<Compression> {
        match std::env::var("BACKUP_COMPRESSION") {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map_err(|e: Error| e.with_context("BACKUP_COMPRESSION")),
            _ => Ok(Compression::Zstd),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" | "zst" => Ok(Compression::Zstd),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "none" | "off" => Ok(Compression::None),
            _ => Err(Error::invalid_input(format!(
                "unknown compression {s:?}: use zstd, gzip or none"
            ))),
        }
    }
}

/// zstd's level for new objects. Level 1: on rows that compress poorly (uuids, random text,
/// hex bytea) it gives the ratio of level 3 at twice the speed, and compression is the largest
/// share of a backup's CPU time. Readers do not need to know it.
pub const ZSTD_LEVEL: i32 = 1;

/// A compressing writer over `W`.
pub enum Encoder<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Gzip(flate2::write::GzEncoder<W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    pub fn new(c: Compression, inner: W) -> io::Result<Self> {
        Ok(match c {
            Compression::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?)
            }
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(6),
            )),
            Compression::None => Encoder::None(inner),
        })
    }

    /// End the compressed stream; returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}

/// A decompressing reader over `R`.
pub enum Decoder<R: BufRead> {
    Zstd(zstd::stream::read::Decoder<'static, R>),
    Gzip(flate2::bufread::GzDecoder<R>),
    None(R),
}

impl<R: BufRead> Decoder<R> {
    pub fn new(c: Compression, inner: R) -> io::Result<Self> {
        Ok(match c {
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(inner)?),
            Compression::Gzip => Decoder::Gzip(flate2::bufread::GzDecoder::new(inner)),
            Compression::None => Decoder::None(inner),
        })
    }

    pub fn get_ref(&self) -> &R {
        match self {
            Decoder::Zstd(d) => d.get_ref(),
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::None(r) => r,
        }
    }

    /// After the compressed stream ended: read what the inner reader still holds, so a reader
    /// that authenticates as it goes reaches its end. Returns the bytes left over.
    pub fn drain_inner(&mut self) -> io::Result<u64> {
        match self {
            Decoder::Zstd(d) => io::copy(d.get_mut(), &mut io::sink()),
            Decoder::Gzip(d) => io::copy(d.get_mut(), &mut io::sink()),
            Decoder::None(r) => io::copy(r, &mut io::sink()),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::None(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let mut e = Encoder::new(c, Vec::new()).unwrap();
            e.write_all(&data).unwrap();
            let packed = e.finish().unwrap();
            let mut d = Decoder::new(c, &packed[..]).unwrap();
            let mut out = Vec::new();
            d.read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{c:?}");
            assert_eq!(Compression::from_codec(c.codec()), Some(c));
        }
        assert!("lz4".parse::<Compression>().is_err());
    }
}
