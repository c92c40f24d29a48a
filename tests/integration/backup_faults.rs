//! Faults a backup must survive: the backup process killed at several points (nothing
//! listed, the next backup succeeds and removes the plaintext scratch folder the killed one
//! left, pruning removes the stored leftovers), damage to the stored
//! objects (truncated, two segments swapped, an object swapped in from another backup or
//! from another project's repository: each refused before the target is touched, and found
//! by a full verify), and a full disk (a clean failure, nothing listed).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgsteward::backup::{RestoreTarget, VerifyTier};
use pgsteward::jobs::CancelToken;
use pgsteward::ErrorCode;

use crate::harness::{cli, cli_json, quiet, Home, Pg};
use crate::on_each_version;

/// Stored size of one full sealed segment (65,536 bytes and a 16-byte tag) and of the
/// object header, per docs/backup-format.md.
const SEALED_SEGMENT: usize = 65_536 + 16;
const HEADER: usize = 19;

fn setup(major: u32, rows: u32) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        &format!(
            "CREATE TABLE \"Big \"\"one\"\"\" (id int PRIMARY KEY, a text, b text);
             INSERT INTO \"Big \"\"one\"\"\" SELECT g, md5(random()::text), md5(g::text || random()::text)
               FROM generate_series(1, {rows}) g;"
        ),
    );
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    (pg, home)
}

fn backups_dir(home: &Home, project: &str) -> PathBuf {
    home.path().join("projects").join(project).join("backups")
}

/// Files of a backup other than its manifest, largest first.
fn objects(home: &Home, project: &str, id: &str) -> Vec<PathBuf> {
    let mut files: Vec<(u64, PathBuf)> = walk(&backups_dir(home, project).join(id))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "manifest.json"))
        .map(|p| (std::fs::metadata(&p).map_or(0, |m| m.len()), p))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files.into_iter().map(|(_, p)| p).collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn listed(home: &Home) -> Vec<String> {
    let mut ids: Vec<String> = home
        .st
        .backup_list("app")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    ids.sort();
    ids
}

fn databases(pg: &Pg) -> String {
    pg.sql(
        "postgres",
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
    )
}

/// Start `pgsteward backup create app` and kill -9 it once `when` says so (or it ends).
/// True when it was killed while still running.
fn kill_backup_when(home: &Home, mut when: impl FnMut(Duration) -> bool) -> bool {
    let mut child = std::process::Command::new(cli())
        .args(["--json", "backup", "create", "app"])
        .env("PGSTEWARD_HOME", home.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if when(t0.elapsed()) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "backup never reached the point"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

async fn killed_backups_are_never_listed_and_prune_removes_them(major: u32) {
    let (_pg, home) = setup(major, 250_000);
    let reference = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    let full: u64 = objects(&home, "app", &reference.id)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let new_bytes = |home: &Home| -> u64 {
        walk(&backups_dir(home, "app"))
            .into_iter()
            .filter(|p| !p.starts_with(backups_dir(home, "app").join(&reference.id)))
            .map(|p| std::fs::metadata(&p).map_or(0, |m| m.len()))
            .sum()
    };

    // At start, once the first bytes are stored, and with most of it stored.
    type KillPoint<'a> = (&'a str, Box<dyn Fn(&Home, Duration) -> bool + 'a>);
    let points: [KillPoint; 3] = [
        ("at start", Box::new(|_, t| t >= Duration::from_millis(50))),
        ("first bytes stored", Box::new(|h, _| new_bytes(h) > 0)),
        (
            "most bytes stored",
            Box::new(|h, _| new_bytes(h) >= full * 7 / 10),
        ),
    ];
    for (what, when) in &points {
        let killed = kill_backup_when(&home, |t| when(&home, t));
        assert!(killed, "the backup ended before the kill point \"{what}\"");
        assert_eq!(
            listed(&home),
            vec![reference.id.clone()],
            "after a kill {what}"
        );
    }
    assert!(new_bytes(&home) > 0, "the kills left objects behind");

    // The next backup succeeds; prune removes the leftovers and keeps both backups.
    let next = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    // No plaintext scratch folder of a killed backup survives the next one.
    let scratch = home.path().join("projects/app/scratch");
    let stale: Vec<_> = std::fs::read_dir(&scratch)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(stale.is_empty(), "scratch left behind: {stale:?}");
    let leftovers: Vec<String> = std::fs::read_dir(backups_dir(&home, "app"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|d| *d != reference.id && *d != next.id)
        .collect();
    assert!(!leftovers.is_empty());
    let (ok, pruned) = cli_json(&home, &["--json", "backup", "prune", "app", "--yes"], None);
    assert!(ok, "{pruned}");
    let mut removed: Vec<String> = pruned["incomplete_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    removed.sort();
    let mut leftovers = leftovers;
    leftovers.sort();
    assert_eq!(removed, leftovers, "{pruned}");
    let mut want = vec![reference.id.clone(), next.id.clone()];
    want.sort();
    assert_eq!(listed(&home), want);
    let dirs: Vec<String> = std::fs::read_dir(backups_dir(&home, "app"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut dirs_sorted = dirs.clone();
    dirs_sorted.sort();
    assert_eq!(dirs_sorted, want, "only complete backups remain on disk");
}
on_each_version!(killed_backups_are_never_listed_and_prune_removes_them);

/// Restore into a new database must fail with `backup_corrupt` (or `wrong_key` for another
/// project's object) and create nothing; a full verify must also fail.
async fn refused(pg: &Pg, home: &Home, id: &str, what: &str) {
    let before = databases(pg);
    let err = home
        .st
        .backup_restore(
            "app",
            id,
            &RestoreTarget::NewDatabase {
                name: "restored".into(),
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .expect_err(what);
    assert!(
        matches!(err.code, ErrorCode::BackupCorrupt | ErrorCode::WrongKey),
        "{what}: {err:?}"
    );
    assert!(!err.message.is_empty());
    assert_eq!(databases(pg), before, "{what}: the target was touched");
    let reports = home
        .st
        .backup_verify("app", Some(id), VerifyTier::Full, 1.0, quiet())
        .await;
    let failed = match reports {
        Err(_) => true,
        Ok(r) => r.iter().any(|v| !v.ok),
    };
    assert!(failed, "{what}: a full verify passed");
}

async fn damaged_objects_are_refused_before_the_target_is_touched(major: u32) {
    let (pg, home) = setup(major, 60_000);
    let a = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    let b = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    let obj = objects(&home, "app", &a.id).remove(0);
    let original = std::fs::read(&obj).unwrap();
    assert!(
        original.len() > HEADER + 2 * SEALED_SEGMENT,
        "the object spans at least two full segments ({} bytes)",
        original.len()
    );

    // Truncated by a few bytes, then by a whole segment (a clean segment boundary).
    std::fs::write(&obj, &original[..original.len() - 7]).unwrap();
    refused(&pg, &home, &a.id, "truncated by 7 bytes").await;
    let cut = HEADER + ((original.len() - HEADER) / SEALED_SEGMENT - 1) * SEALED_SEGMENT;
    std::fs::write(&obj, &original[..cut]).unwrap();
    refused(&pg, &home, &a.id, "truncated at a segment boundary").await;

    // Two segments swapped.
    let mut swapped = original.clone();
    let (s0, s1) = (HEADER, HEADER + SEALED_SEGMENT);
    let first = original[s0..s1].to_vec();
    swapped[s0..s1].copy_from_slice(&original[s1..s1 + SEALED_SEGMENT]);
    swapped[s1..s1 + SEALED_SEGMENT].copy_from_slice(&first);
    std::fs::write(&obj, &swapped).unwrap();
    refused(&pg, &home, &a.id, "two segments swapped").await;

    // The same object of another backup of the same project.
    let name = obj
        .strip_prefix(backups_dir(&home, "app").join(&a.id))
        .unwrap();
    let from_b = backups_dir(&home, "app").join(&b.id).join(name);
    std::fs::copy(&from_b, &obj).unwrap();
    refused(&pg, &home, &a.id, "object swapped in from another backup").await;

    // The same object of another project's backup (its own key and repository id).
    home.add_uri("other", &pg.uri("app"));
    let o = home
        .st
        .backup_create("other", quiet(), CancelToken::default())
        .await
        .unwrap();
    let from_other = backups_dir(&home, "other").join(&o.id).join(name);
    std::fs::copy(&from_other, &obj).unwrap();
    refused(&pg, &home, &a.id, "object copied from another project").await;

    // Put back: it restores again, so the refusals were about the damage.
    std::fs::write(&obj, &original).unwrap();
    home.st
        .backup_restore(
            "app",
            &a.id,
            &RestoreTarget::NewDatabase {
                name: "restored".into(),
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        pg.sql("restored", "SELECT count(*) FROM \"Big \"\"one\"\"\"")
            .trim(),
        "60000"
    );
}
on_each_version!(damaged_objects_are_refused_before_the_target_is_touched);

/// The backups folder on a 512 KiB file system: the backup fails with a clear error naming
/// the lack of space, nothing is listed, and once there is room the next one succeeds.
#[tokio::test]
async fn a_full_disk_fails_cleanly() {
    let (_pg, home) = setup(15, 60_000);
    let dir = backups_dir(&home, "app");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a small tmpfs needs root");
    let unmount = || {
        let _ = std::process::Command::new("umount").arg(&dir).status();
    };
    let err = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await;
    let listed_then = home.st.backup_list("app");
    unmount();
    let err = err.expect_err("a backup larger than the disk fails");
    assert!(
        err.message.to_lowercase().contains("space"),
        "the error says the disk is full: {err:?}"
    );
    assert!(listed_then.unwrap().is_empty());
    home.st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    assert_eq!(home.st.backup_list("app").unwrap().len(), 1);
}
