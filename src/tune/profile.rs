//! The hardware and workload profile tuning starts from.
//!
//! RAM, CPUs and storage are detected when the server runs on this machine (honouring the
//! container's cgroup limits, which tools that read only `/proc/meminfo` get wrong), otherwise
//! entered. What the user enters always wins over what is saved, and what is saved wins over
//! detection. The resolved profile is saved as `tune/profile.json` in the project's folder.

use std::path::Path;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{Error, Result};

/// Kind of work the server does, as PGTune names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Web application: many short queries.
    Web,
    /// Online transaction processing.
    Oltp,
    /// Data warehouse: few large analytical queries.
    Dw,
    /// A developer's machine, PostgreSQL among other programs.
    Desktop,
    /// Mixed application and reporting.
    Mixed,
}

impl Workload {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "web" => Ok(Workload::Web),
            "oltp" => Ok(Workload::Oltp),
            "dw" | "data_warehouse" | "warehouse" => Ok(Workload::Dw),
            "desktop" => Ok(Workload::Desktop),
            "mixed" => Ok(Workload::Mixed),
            other => Err(Error::invalid_input(format!(
                "Unknown workload \"{}\": use web, oltp, dw, desktop or mixed.",
                other.escape_default()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Web => "web",
            Workload::Oltp => "oltp",
            Workload::Dw => "dw",
            Workload::Desktop => "desktop",
            Workload::Mixed => "mixed",
        }
    }
}

/// The storage the data directory sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    Ssd,
    Hdd,
    San,
    Nvme,
}

impl StorageKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ssd" => Ok(StorageKind::Ssd),
            "hdd" => Ok(StorageKind::Hdd),
            "san" => Ok(StorageKind::San),
            "nvme" => Ok(StorageKind::Nvme),
            other => Err(Error::invalid_input(format!(
                "Unknown storage type \"{}\": use ssd, hdd, san or nvme.",
                other.escape_default()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Ssd => "ssd",
            StorageKind::Hdd => "hdd",
            StorageKind::San => "san",
            StorageKind::Nvme => "nvme",
        }
    }
}

/// Operating system of the server (PGTune changes a few rules for Windows and macOS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OsKind {
    Linux,
    Windows,
    Mac,
}

impl OsKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linux" => Ok(OsKind::Linux),
            "windows" => Ok(OsKind::Windows),
            "mac" | "macos" | "osx" => Ok(OsKind::Mac),
            other => Err(Error::invalid_input(format!(
                "Unknown operating system \"{}\": use linux, windows or mac.",
                other.escape_default()
            ))),
        }
    }
}

/// How big the databases are compared with RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DbSize {
    /// Not known (PGTune's own assumption).
    #[default]
    Unknown,
    /// The data fits in RAM.
    SmallerThanRam,
    /// The data is larger than RAM.
    LargerThanRam,
}

impl DbSize {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "unknown" => Ok(DbSize::Unknown),
            "smaller" | "fits" | "smaller_than_ram" => Ok(DbSize::SmallerThanRam),
            "larger" | "larger_than_ram" => Ok(DbSize::LargerThanRam),
            other => Err(Error::invalid_input(format!(
                "Unknown database size \"{}\": use smaller, larger or unknown (compared with RAM).",
                other.escape_default()
            ))),
        }
    }
}

/// Where a profile's hardware figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ProfileSource {
    Entered,
    Detected,
    Saved,
}

/// A complete, validated profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct HardwareProfile {
    /// RAM available to PostgreSQL, in kB (1 GB = 1048576 kB).
    #[ts(type = "number")]
    pub ram_kb: u64,
    /// CPUs; `None` when unknown (PGTune then skips the parallelism settings).
    pub cpus: Option<u32>,
    pub storage: StorageKind,
    pub workload: Workload,
    /// Expected connections; `None` takes the workload's default.
    pub connections: Option<u32>,
    #[serde(default)]
    pub db_size: DbSize,
    pub os: OsKind,
    pub source: ProfileSource,
}

/// What the user typed; every field optional, checked by [`resolve`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct ProfileInput {
    /// RAM with a unit: "16GB", "512MB", "2TB", "1048576kB".
    pub ram: Option<String>,
    #[ts(type = "number | null")]
    pub cpus: Option<i64>,
    pub storage: Option<String>,
    pub workload: Option<String>,
    #[ts(type = "number | null")]
    pub connections: Option<i64>,
    pub db_size: Option<String>,
    pub os: Option<String>,
}

impl ProfileInput {
    pub fn is_empty(&self) -> bool {
        self.ram.is_none()
            && self.cpus.is_none()
            && self.storage.is_none()
            && self.workload.is_none()
            && self.connections.is_none()
            && self.db_size.is_none()
            && self.os.is_none()
    }
}

/// What was found on this machine; any part may be missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detected {
    pub ram_kb: Option<u64>,
    pub cpus: Option<u32>,
    pub storage: Option<StorageKind>,
}

/// Parse a memory size with a unit into kB. Units are binary, as PostgreSQL and PGTune use them.
pub fn parse_ram_kb(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::invalid_input(format!(
            "RAM \"{}\" is not a size: give a number with a unit, e.g. 16GB or 512MB.",
            s.escape_default()
        ))
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "kb" | "k" | "kib" => 1.0,
        "mb" | "m" | "mib" => 1024.0,
        "gb" | "g" | "gib" => 1024.0 * 1024.0,
        "tb" | "t" | "tib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    if !n.is_finite() || n <= 0.0 {
        return Err(Error::invalid_input(format!(
            "RAM must be more than 0 (got \"{}\").",
            s.escape_default()
        )));
    }
    let kb = (n * mult).floor();
    if kb < 1.0 || kb > (1u64 << 50) as f64 {
        return Err(Error::invalid_input(format!(
            "RAM \"{}\" is out of range.",
            s.escape_default()
        )));
    }
    Ok(kb as u64)
}

fn positive(what: &str, v: i64, max: i64) -> Result<u32> {
    if v <= 0 {
        return Err(Error::invalid_input(format!(
            "{what} must be at least 1 (got {v})."
        )));
    }
    if v > max {
        return Err(Error::invalid_input(format!(
            "{what} must be at most {max} (got {v})."
        )));
    }
    Ok(v as u32)
}

/// Combine entered, saved and detected values into a profile; entered wins, then saved.
pub fn resolve(
    input: &ProfileInput,
    saved: Option<&HardwareProfile>,
    detected: &Detected,
) -> Result<HardwareProfile> {
    let entered_ram = input.ram.as_deref().map(parse_ram_kb).transpose()?;
    let entered_cpus = input
        .cpus
        .map(|c| positive("The number of CPUs", c, 65_536))
        .transpose()?;
    let entered_conns = input
        .connections
        .map(|c| positive("The number of connections", c, 262_143))
        .transpose()?;
    let entered_storage = input
        .storage
        .as_deref()
        .map(StorageKind::parse)
        .transpose()?;
    let workload = input.workload.as_deref().map(Workload::parse).transpose()?;
    let db_size = input.db_size.as_deref().map(DbSize::parse).transpose()?;
    let os = input.os.as_deref().map(OsKind::parse).transpose()?;

    let ram_kb = entered_ram
        .or(saved.map(|s| s.ram_kb))
        .or(detected.ram_kb)
        .ok_or_else(|| {
            Error::invalid_input(
                "The server's RAM is not known (it is not on this machine): give it, e.g. --ram 16GB.",
            )
        })?;
    let source = if entered_ram.is_some() {
        ProfileSource::Entered
    } else if saved.is_some() {
        ProfileSource::Saved
    } else {
        ProfileSource::Detected
    };
    Ok(HardwareProfile {
        ram_kb,
        cpus: entered_cpus
            .or(saved.and_then(|s| s.cpus))
            .or(detected.cpus),
        storage: entered_storage
            .or(saved.map(|s| s.storage))
            .or(detected.storage)
            .unwrap_or(StorageKind::Ssd),
        workload: workload
            .or(saved.map(|s| s.workload))
            .unwrap_or(Workload::Web),
        connections: entered_conns.or(saved.and_then(|s| s.connections)),
        db_size: db_size.or(saved.map(|s| s.db_size)).unwrap_or_default(),
        os: os.or(saved.map(|s| s.os)).unwrap_or(OsKind::Linux),
        source,
    })
}

/// Check every field the user typed, without needing anything else.
pub fn check_input(input: &ProfileInput) -> Result<()> {
    let placeholder = Detected {
        ram_kb: Some(1),
        ..Detected::default()
    };
    resolve(input, None, &placeholder).map(|_| ())
}

/// RAM limit of a cgroup v2 `memory.max` file ("max" means none), in kB.
pub fn parse_memory_max(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().map(|b| b / 1024).filter(|&k| k > 0)
}

/// CPU limit of a cgroup v2 `cpu.max` file ("quota period", quota "max" means none), rounded up.
pub fn parse_cpu_max(text: &str) -> Option<u32> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period: u64 = it.next().and_then(|p| p.parse().ok()).unwrap_or(100_000);
    if quota == "max" || period == 0 {
        return None;
    }
    let q: u64 = quota.parse().ok()?;
    Some(q.div_ceil(period).max(1) as u32)
}

/// `MemTotal` of a `/proc/meminfo` text, in kB.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Detect RAM, CPUs and storage under `root` ("/" on a real machine). `block_device` is the
/// `major:minor` of the device holding the data directory when known; otherwise storage is
/// judged from every physical disk (any rotating disk means hdd).
pub fn detect_under(root: &Path, block_device: Option<&str>) -> Detected {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let total = read("proc/meminfo").as_deref().and_then(parse_meminfo);
    let limit = read("sys/fs/cgroup/memory.max")
        .as_deref()
        .and_then(parse_memory_max);
    let ram_kb = match (total, limit) {
        (Some(t), Some(l)) => Some(t.min(l)),
        (t, l) => t.or(l),
    };
    let online = std::thread::available_parallelism()
        .ok()
        .map(|n| n.get() as u32);
    let quota = read("sys/fs/cgroup/cpu.max")
        .as_deref()
        .and_then(parse_cpu_max);
    let cpus = match (online, quota) {
        (Some(o), Some(q)) => Some(o.min(q)),
        (o, q) => o.or(q),
    };
    let rotational = |dev_dir: &Path| -> Option<bool> {
        let direct = std::fs::read_to_string(dev_dir.join("queue/rotational")).ok();
        // A partition has no queue of its own; its parent disk does.
        let text =
            direct.or_else(|| std::fs::read_to_string(dev_dir.join("../queue/rotational")).ok())?;
        Some(text.trim() == "1")
    };
    let storage = block_device
        .and_then(|d| rotational(&root.join("sys/dev/block").join(d)))
        .or_else(|| {
            let entries = std::fs::read_dir(root.join("sys/block")).ok()?;
            let mut seen = None;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if ["loop", "ram", "zram", "dm-", "sr", "md"]
                    .iter()
                    .any(|p| name.starts_with(p))
                {
                    continue;
                }
                if let Some(r) = rotational(&e.path()) {
                    seen = Some(seen.unwrap_or(false) || r);
                }
            }
            seen
        })
        .map(|rot| {
            if rot {
                StorageKind::Hdd
            } else {
                StorageKind::Ssd
            }
        });
    Detected {
        ram_kb,
        cpus,
        storage,
    }
}

/// Detect this machine's hardware.
pub fn detect_local() -> Detected {
    detect_under(Path::new("/"), None)
}

/// Read a saved profile; `None` when there is none.
pub fn load(path: &Path) -> Result<Option<HardwareProfile>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(format!("the saved tuning profile is unreadable: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading the tuning profile", e)),
    }
}

/// Save a profile atomically.
pub fn save(path: &Path, p: &HardwareProfile) -> Result<()> {
    super::write_json(path, p, "saving the tuning profile")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_ram_kb("16GB").unwrap(), 16 * 1048576);
        assert_eq!(parse_ram_kb("16 gb").unwrap(), 16 * 1048576);
        assert_eq!(parse_ram_kb("512MB").unwrap(), 524288);
        assert_eq!(parse_ram_kb("1.5GB").unwrap(), 1572864);
        assert_eq!(parse_ram_kb("2TB").unwrap(), 2 * 1073741824);
        assert_eq!(parse_ram_kb("2048kB").unwrap(), 2048);
        for bad in ["0GB", "-4GB", "16", "lots", "GB", ""] {
            let e = parse_ram_kb(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn nonsense_is_refused_with_invalid_input() {
        let d = Detected::default();
        let cases = [
            ProfileInput {
                ram: Some("0GB".into()),
                ..Default::default()
            },
            ProfileInput {
                ram: Some("8GB".into()),
                cpus: Some(-2),
                ..Default::default()
            },
            ProfileInput {
                ram: Some("8GB".into()),
                workload: Some("gaming".into()),
                ..Default::default()
            },
            ProfileInput {
                ram: Some("8GB".into()),
                connections: Some(0),
                ..Default::default()
            },
            ProfileInput {
                ram: Some("8GB".into()),
                storage: Some("floppy".into()),
                ..Default::default()
            },
            ProfileInput::default(),
        ];
        for c in cases {
            let e = resolve(&c, None, &d).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidInput, "{c:?}");
        }
        let e = resolve(
            &ProfileInput {
                ram: Some("8GB".into()),
                cpus: Some(-2),
                ..Default::default()
            },
            None,
            &d,
        )
        .unwrap_err();
        assert!(e.message.contains("CPUs"), "{}", e.message);
    }

    #[test]
    fn entered_beats_saved_beats_detected() {
        let detected = Detected {
            ram_kb: Some(1000),
            cpus: Some(2),
            storage: Some(StorageKind::Hdd),
        };
        let p = resolve(&ProfileInput::default(), None, &detected).unwrap();
        assert_eq!(p.ram_kb, 1000);
        assert_eq!(p.storage, StorageKind::Hdd);
        assert_eq!(p.source, ProfileSource::Detected);
        let mut saved = p.clone();
        saved.ram_kb = 2000;
        saved.workload = Workload::Dw;
        let p = resolve(&ProfileInput::default(), Some(&saved), &detected).unwrap();
        assert_eq!((p.ram_kb, p.workload), (2000, Workload::Dw));
        assert_eq!(p.source, ProfileSource::Saved);
        let p = resolve(
            &ProfileInput {
                ram: Some("4GB".into()),
                workload: Some("oltp".into()),
                ..Default::default()
            },
            Some(&saved),
            &detected,
        )
        .unwrap();
        assert_eq!((p.ram_kb, p.workload), (4194304, Workload::Oltp));
        assert_eq!(p.source, ProfileSource::Entered);
    }

    #[test]
    fn cgroup_limits_win_over_the_host() {
        assert_eq!(parse_memory_max("max\n"), None);
        assert_eq!(parse_memory_max("2147483648\n"), Some(2097152));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));

        let root = tempfile::tempdir().unwrap();
        let w = |p: &str, t: &str| {
            let f = root.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, t).unwrap();
        };
        w(
            "proc/meminfo",
            "MemTotal:       65853112 kB\nMemFree: 1 kB\n",
        );
        w("sys/fs/cgroup/memory.max", "4294967296\n");
        w("sys/fs/cgroup/cpu.max", "100000 100000\n");
        w("sys/block/sda/queue/rotational", "1\n");
        w("sys/block/nvme0n1/queue/rotational", "0\n");
        w("sys/block/loop0/queue/rotational", "1\n");
        let d = detect_under(root.path(), None);
        assert_eq!(d.ram_kb, Some(4194304));
        assert_eq!(d.cpus, Some(1));
        assert_eq!(d.storage, Some(StorageKind::Hdd));

        w("sys/block/sda/queue/rotational", "0\n");
        w("sys/fs/cgroup/memory.max", "max\n");
        let d = detect_under(root.path(), None);
        assert_eq!(d.ram_kb, Some(65853112));
        assert_eq!(d.storage, Some(StorageKind::Ssd));
    }
}
