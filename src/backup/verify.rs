//! Verifying backups in tiers, from cheap to thorough.
//!
//! - quick: the manifest authenticates and every object is present with its recorded size;
//! - sampled: additionally a random fraction of each object's sealed segments is read and
//!   authenticated (always the first and the last, so truncation and header damage show);
//! - full: every byte is read, authenticated, decompressed and hashed against the manifest.
//!
//! Segments are independent (their nonce carries the counter and the last flag), so a sample
//! proves what it read is intact and in its place without reading the rest.

use std::str::FromStr;

use rand::seq::index::sample;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::crypto;
use super::logical;
use super::repo::{Manifest, Storage};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::Reporter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum VerifyTier {
    Quick,
    Sampled,
    Full,
    /// Restored into a throwaway server and compared with the facts recorded at backup time.
    Recovery,
}

impl VerifyTier {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyTier::Quick => "quick",
            VerifyTier::Sampled => "sampled",
            VerifyTier::Full => "full",
            VerifyTier::Recovery => "recovery",
        }
    }
}

impl FromStr for VerifyTier {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "quick" => Ok(VerifyTier::Quick),
            "sampled" => Ok(VerifyTier::Sampled),
            "full" => Ok(VerifyTier::Full),
            _ => Err(Error::invalid_input(format!(
                "unknown verify tier {s:?}: use quick, sampled or full"
            ))),
        }
    }
}

/// Outcome of verifying one backup. A failed check is `ok: false` with the reason; errors
/// that stop the check itself (storage unreachable, wrong key) are returned as errors.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct VerifyReport {
    pub backup_id: String,
    pub tier: VerifyTier,
    pub ok: bool,
    /// What was found wrong, or what was checked.
    pub message: String,
    /// Stored bytes read to check.
    #[ts(type = "number")]
    pub bytes_read: u64,
    #[ts(type = "number")]
    pub duration_ms: u64,
    pub verified_at: String,
}

fn corrupt(backup_id: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::BackupCorrupt,
        format!("Backup {backup_id} is damaged: {why}."),
    )
}

/// Every object present with its recorded size.
fn quick(storage: &dyn Storage, m: &Manifest) -> Result<()> {
    for obj in &m.objects {
        match storage.size(&format!("{}/{}", m.backup_id, obj.name))? {
            None => return Err(corrupt(&m.backup_id, format!("{} is missing", obj.name))),
            Some(n) if n != obj.stored_bytes => {
                return Err(corrupt(
                    &m.backup_id,
                    format!(
                        "{} has {n} bytes where {} were written",
                        obj.name, obj.stored_bytes
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Authenticate a random `fraction` of each object's segments (at least the first and last).
fn sampled(
    storage: &dyn Storage,
    kek: &[u8; 32],
    m: &Manifest,
    fraction: f64,
    rep: &mut Reporter,
) -> Result<u64> {
    let dek = logical::unwrap_dek(m, kek)?;
    let mut read = 0u64;
    for obj in &m.objects {
        let key = format!("{}/{}", m.backup_id, obj.name);
        let header = storage.read_at(&key, 0, crypto::HEADER_LEN)?;
        let prefix = crypto::read_header(&header).map_err(|e| corrupt(&m.backup_id, e))?;
        let aad = crypto::object_aad(&m.repository, &m.backup_id, &obj.name);
        let layout = crypto::segment_layout(obj.stored_bytes);
        if layout.is_empty() {
            return Err(corrupt(
                &m.backup_id,
                format!("{} has no segments", obj.name),
            ));
        }
        let n = layout.len();
        let want = ((n as f64 * fraction).ceil() as usize).clamp(1, n);
        let mut picks: Vec<usize> = sample(&mut rand::thread_rng(), n, want).into_vec();
        picks.extend([0, n - 1]);
        picks.sort_unstable();
        picks.dedup();
        for i in picks {
            let (off, len) = layout[i];
            let bytes = storage.read_at(&key, off, len)?;
            if bytes.len() != len {
                return Err(corrupt(&m.backup_id, format!("{} is truncated", obj.name)));
            }
            crypto::open_segment(&dek, &prefix, &aad, i as u32, i + 1 == n, &bytes).map_err(
                |e| {
                    corrupt(
                        &m.backup_id,
                        format!(
                            "{}: {}",
                            obj.name,
                            e.to_string().trim_start_matches("backup_corrupt: ")
                        ),
                    )
                },
            )?;
            read += len as u64;
            rep.bytes(read);
        }
    }
    Ok(read)
}

/// Verify one backup at `tier`. `fraction` applies to the sampled tier (0 < f <= 1).
pub fn verify(
    storage: &dyn Storage,
    kek: &[u8; 32],
    m: &Manifest,
    tier: VerifyTier,
    fraction: f64,
    rep: &mut Reporter,
) -> Result<VerifyReport> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::invalid_input(
            "the sampled fraction must be above 0 and at most 1",
        ));
    }
    let started = std::time::Instant::now();
    rep.phase(&format!("verifying ({})", tier.as_str()));
    let stored: u64 = m.objects.iter().map(|o| o.stored_bytes).sum();
    let outcome = quick(storage, m).and_then(|()| match tier {
        VerifyTier::Quick => Ok(0),
        VerifyTier::Recovery => Err(Error::invalid_input(
            "a recovery test restores the backup: use the recovery test, not verify",
        )),
        VerifyTier::Sampled => sampled(storage, kek, m, fraction, rep),
        VerifyTier::Full => logical::verify(storage, kek, m, rep).map(|()| stored),
    });
    let (ok, message, bytes_read) = match outcome {
        Ok(read) => (
            true,
            match tier {
                VerifyTier::Quick => {
                    format!("{} object(s) present with their sizes", m.objects.len())
                }
                VerifyTier::Sampled => format!(
                    "{} object(s) present; {} of {} stored bytes authenticated",
                    m.objects.len(),
                    read,
                    stored
                ),
                VerifyTier::Full | VerifyTier::Recovery => {
                    "every byte authenticated; sizes and plaintext digests match".to_string()
                }
            },
            read,
        ),
        Err(e) if e.code == ErrorCode::BackupCorrupt => (false, e.message, 0),
        Err(e) => return Err(e),
    };
    Ok(VerifyReport {
        backup_id: m.backup_id.clone(),
        tier,
        ok,
        message,
        bytes_read,
        duration_ms: started.elapsed().as_millis() as u64,
        verified_at: chrono::Utc::now().to_rfc3339(),
    })
}
