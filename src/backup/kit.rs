//! Recovery kit: the project's backup key sealed under a passphrase, so backups stay restorable
//! when the keyring is lost or on another machine.
//!
//! The passphrase goes through Argon2id (64 MiB, 3 passes), which makes guessing costly; the
//! derived key seals the backup key with AES-256-GCM, the associated data binding the kit to its
//! project, repository and key id. The kit file holds no secret in the clear.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::crypto;
use crate::error::{Error, ErrorCode, Result};

pub const KIT_FORMAT: &str = "pgsteward-recovery-kit-v1";
/// Shortest passphrase accepted.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
const M_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kdf {
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: String,
}

/// The kit as written to a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryKit {
    pub format: String,
    pub project: String,
    pub repository: String,
    /// Id of the key inside, to match it against backups without opening the kit.
    pub key_id: String,
    pub created_at: String,
    pub kdf: Kdf,
    pub nonce: String,
    pub sealed_key: String,
    /// For the person who finds this file.
    pub note: String,
}

fn aad(kit: &RecoveryKit) -> Vec<u8> {
    format!(
        "{KIT_FORMAT}\0{}\0{}\0{}",
        kit.project, kit.repository, kit.key_id
    )
    .into_bytes()
}

fn derive(passphrase: &str, kdf: &Kdf) -> Result<Zeroizing<[u8; 32]>> {
    if kdf.algorithm != "argon2id" {
        return Err(Error::invalid_input(format!(
            "recovery kit uses an unknown key derivation {:?}",
            kdf.algorithm
        )));
    }
    // Bounds keep a hostile kit from asking for absurd memory or time.
    if kdf.memory_kib < 8 * 1024
        || kdf.memory_kib > 1024 * 1024
        || kdf.iterations == 0
        || kdf.iterations > 20
        || kdf.parallelism == 0
        || kdf.parallelism > 16
    {
        return Err(Error::invalid_input(
            "recovery kit has out-of-range key derivation parameters",
        ));
    }
    let salt = b64(&kdf.salt)?;
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| Error::invalid_input(format!("recovery kit parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, out.as_mut())
        .map_err(|e| Error::internal(format!("deriving the kit key: {e}")))?;
    Ok(out)
}

fn b64(s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| Error::invalid_input("the recovery kit is not readable (bad base64)"))
}

pub fn check_passphrase(passphrase: &str) -> Result<()> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(Error::invalid_input(format!(
            "the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    Ok(())
}

/// Seal `kek` under `passphrase`.
pub fn export(
    kek: &[u8; 32],
    project: &str,
    repository: &str,
    passphrase: &str,
) -> Result<RecoveryKit> {
    check_passphrase(passphrase)?;
    let enc = base64::engine::general_purpose::STANDARD;
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut kit = RecoveryKit {
        format: KIT_FORMAT.into(),
        project: project.into(),
        repository: repository.into(),
        key_id: crypto::key_id(kek),
        created_at: chrono::Utc::now().to_rfc3339(),
        kdf: Kdf {
            algorithm: "argon2id".into(),
            memory_kib: M_KIB,
            iterations: T_COST,
            parallelism: P_COST,
            salt: enc.encode(salt),
        },
        nonce: enc.encode(nonce),
        sealed_key: String::new(),
        note: "pgsteward recovery kit: the backup key of one project, sealed under a passphrase. \
               Import it with `pgsteward key import-kit PROJECT FILE`."
            .into(),
    };
    let k = derive(passphrase, &kit.kdf)?;
    let ct = crypto::Gcm::new(&k).seal(nonce, &aad(&kit), kek);
    kit.sealed_key = enc.encode(ct);
    Ok(kit)
}

/// Open a kit with its passphrase. A wrong passphrase (or an altered kit) is `wrong_key`.
pub fn open(kit: &RecoveryKit, passphrase: &str) -> Result<Zeroizing<[u8; 32]>> {
    if kit.format != KIT_FORMAT {
        return Err(Error::invalid_input(format!(
            "not a pgsteward recovery kit (format {:?})",
            kit.format
        )));
    }
    let k = derive(passphrase, &kit.kdf)?;
    let nonce: [u8; 12] = b64(&kit.nonce)?
        .try_into()
        .map_err(|_| Error::invalid_input("the recovery kit is not readable"))?;
    let pt = crypto::Gcm::new(&k)
        .open(nonce, &aad(kit), &b64(&kit.sealed_key)?)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::WrongKey,
                "The passphrase does not open this recovery kit (or the kit was altered).",
            )
        })?;
    if pt.len() != 32 {
        return Err(Error::invalid_input(
            "the recovery kit holds no 256-bit key",
        ));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&pt);
    if crypto::key_id(&key) != kit.key_id {
        return Err(Error::new(
            ErrorCode::WrongKey,
            "The recovery kit's key does not match its recorded key id.",
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let kek = crypto::random_key();
        let kit = export(&kek, "app", "app", "correct horse battery").unwrap();
        let text = serde_json::to_string(&kit).unwrap();
        assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(kek.as_ref())));
        assert_eq!(*open(&kit, "correct horse battery").unwrap(), *kek);
        assert_eq!(
            open(&kit, "correct horse batterY").unwrap_err().code,
            ErrorCode::WrongKey
        );
        let mut moved = kit.clone();
        moved.project = "other".into();
        assert_eq!(
            open(&moved, "correct horse battery").unwrap_err().code,
            ErrorCode::WrongKey
        );
        assert_eq!(
            export(&kek, "app", "app", "short").unwrap_err().code,
            ErrorCode::InvalidInput
        );
        let mut greedy = kit.clone();
        greedy.kdf.memory_kib = u32::MAX;
        assert_eq!(
            open(&greedy, "correct horse battery").unwrap_err().code,
            ErrorCode::InvalidInput
        );
    }
}
