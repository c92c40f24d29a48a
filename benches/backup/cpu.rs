//! Where a timed step's CPU goes, so the backup benchmark can say what this machine's cores
//! allow and not only what a run took:
//! - the core-seconds of the client (the programs the bench starts, with their children) and of
//!   the server (the postmaster and every process it started, those that ended included);
//! - one core's rate for each stage a full verify runs on every byte (zstd decoding, SHA-256 of
//!   the plaintext, AES-256-GCM opening), measured on the dataset's own dump.
//!
//! Linux only (it reads /proc); its clock ticks are taken as 100 per second, as in
//! `common::own_cpu_seconds`.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use sha2::Digest;

use super::common::{own_cpu_seconds, process_tree, stat_fields, Server};
use super::GB;

/// Core-seconds a step took, on each side.
#[derive(Clone, Copy)]
pub(super) struct Cpu {
    pub client: f64,
    pub server: f64,
}

impl Cpu {
    pub fn total(self) -> f64 {
        self.client + self.server
    }

    /// "client 1.9 + server 6.1 = 8.0 core-s, 1.45 cores busy"
    pub fn describe(self, wall: f64) -> String {
        format!(
            "client {:.1} + server {:.1} = {:.1} core-s, {:.2} cores busy",
            self.client,
            self.server,
            self.total(),
            self.total() / wall
        )
    }
}

/// CPU of the children this process waited for (cutime + cstime).
fn reaped_children() -> f64 {
    let f = stat_fields("self");
    (f.get(13).unwrap_or(&0.0) + f.get(14).unwrap_or(&0.0)) / 100.0
}

/// CPU of the server: the postmaster's own, its living processes', and that of the ones it
/// reaped (backends that disconnected, parallel workers).
fn server_cpu(server: &Server) -> f64 {
    let pid_file = server.cluster.data_dir.join("postmaster.pid");
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
    else {
        return f64::NAN;
    };
    let f = stat_fields(&pid.to_string());
    let reaped = (f.get(13).unwrap_or(&0.0) + f.get(14).unwrap_or(&0.0)) / 100.0;
    reaped
        + process_tree(pid)
            .into_iter()
            .map(own_cpu_seconds)
            .sum::<f64>()
}

/// Run `step` and return what it gave with the core-seconds it cost on each side. The step's
/// client programs must have ended (been waited for) when it returns.
pub(super) fn measured<T>(server: &Server, step: impl FnOnce() -> T) -> (T, Cpu) {
    let (c0, s0) = (reaped_children(), server_cpu(server));
    let out = step();
    let cpu = Cpu {
        client: reaped_children() - c0,
        server: server_cpu(server) - s0,
    };
    (out, cpu)
}

/// One core's rate of each stage a full verify runs, in GB per second of its input.
pub(super) struct StageRates {
    /// zstd decoding, per GB of plaintext out (at the level pgsteward writes).
    pub zstd_decode: f64,
    pub sha256: f64,
    /// AES-256-GCM opening of 1 MiB segments, per GB of stored bytes.
    pub gcm_open: f64,
    /// The sample's plaintext / compressed size.
    pub ratio: f64,
}

impl StageRates {
    /// Core-seconds a full verify needs per GB of stored bytes, on this data.
    pub fn core_s_per_stored_gb(&self) -> f64 {
        self.ratio * (1.0 / self.zstd_decode + 1.0 / self.sha256) + 1.0 / self.gcm_open
    }
}

/// The largest file under `dir` (the dump's biggest table), at most 512 MiB of it.
fn sample(dir: &Path) -> Vec<u8> {
    let largest = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().map_or(0, |m| m.len()))
        .expect("the dump folder has files");
    let mut data = Vec::new();
    std::fs::File::open(largest.path())
        .unwrap()
        .take(512 << 20)
        .read_to_end(&mut data)
        .unwrap();
    data
}

/// Rate of `work` over `bytes`, best of three (one core, no other step running).
fn rate(bytes: usize, mut work: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t0 = Instant::now();
            work();
            bytes as f64 / GB / t0.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// Measure the stage rates on the plaintext dump in `dir` (pg_dump -Fd -Z0 output).
pub(super) fn stage_rates(dir: &Path) -> StageRates {
    let plain = sample(dir);
    let packed = zstd::bulk::compress(&plain, pgsteward::backup::codec::ZSTD_LEVEL).unwrap();
    let zstd_decode = rate(plain.len(), || {
        let mut d = zstd::stream::read::Decoder::new(&packed[..]).unwrap();
        std::io::copy(&mut d, &mut std::io::sink()).unwrap();
    });
    let sha256 = rate(plain.len(), || {
        let mut h = sha2::Sha256::new();
        for chunk in plain.chunks(256 << 10) {
            h.update(chunk);
        }
        std::hint::black_box(h.finalize());
    });
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
    let nonce = || Nonce::assume_unique_for_key([1; 12]);
    let mut segments: Vec<Vec<u8>> = packed.chunks(1 << 20).map(<[u8]>::to_vec).collect();
    for s in &mut segments {
        key.seal_in_place_append_tag(nonce(), Aad::empty(), s)
            .unwrap();
    }
    let mut buf = Vec::with_capacity((1 << 20) + 16);
    let gcm_open = rate(packed.len(), || {
        for s in &segments {
            buf.clear();
            buf.extend_from_slice(s);
            key.open_in_place(nonce(), Aad::empty(), &mut buf).unwrap();
        }
    });
    StageRates {
        zstd_decode,
        sha256,
        gcm_open,
        ratio: plain.len() as f64 / packed.len().max(1) as f64,
    }
}
