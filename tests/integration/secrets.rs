//! Secrets live in the OS keyring and survive across processes.

use pgsteward::secrets::SecretKind;

use crate::harness::{cli, Home, Pg};

#[test]
fn a_secret_written_by_one_process_is_read_by_another() {
    let pg = Pg::start(15);
    let home = Home::new();
    let mut child = std::process::Command::new(cli())
        .args(["project", "add", "remote", "--conninfo"])
        .arg(format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            pg.port()
        ))
        .arg("--password-stdin")
        .env("PGSTEWARD_HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pg.password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // This process reads what the CLI process stored.
    let got = home
        .st
        .secrets()
        .get("remote", SecretKind::Password)
        .unwrap()
        .expect("password in the keyring");
    assert_eq!(got.as_str(), pg.password);
    // ...and nowhere on disk.
    for entry in walk(&home.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&pg.password),
            "password found in {}",
            entry.display()
        );
    }

    // Another data folder has its own secrets, even for a project of the same name.
    let other = Home::new();
    assert!(other
        .st
        .secrets()
        .get("remote", SecretKind::Password)
        .unwrap()
        .is_none());

    // Removing the project removes its keyring entry.
    home.st.remove("remote", true).unwrap();
    assert!(home
        .st
        .secrets()
        .get("remote", SecretKind::Password)
        .unwrap()
        .is_none());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_missing_keyring_is_said_plainly_and_nothing_is_saved() {
    let home = Home::new();
    let out = std::process::Command::new(cli())
        .args([
            "--json",
            "project",
            "add",
            "p",
            "--no-test",
            "--conninfo",
            "host=127.0.0.1 user=x",
        ])
        .arg("--password-stdin")
        .env("PGSTEWARD_HOME", home.path())
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"secret")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "keyring_unavailable", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("keyring"));
    assert!(
        home.st.list().unwrap().is_empty(),
        "no project is saved without its password"
    );
}
