//! All six sslmode values against a server with TLS, with a CA and certificate made for the test.

use std::path::Path;
use std::process::Command;

use pgsteward::cluster::ClusterOptions;
use pgsteward::ErrorCode;

use crate::harness::{Home, Pg};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for "localhost" signed by it; plus an unrelated CA.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=other-ca",
            "-keyout",
            "other.key",
            "-out",
            "other.crt",
        ],
    );
}

/// Copy the server certificate and key into a data folder, owned by the server's user.
fn install_server_cert(certs: &Path, data: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = std::fs::metadata(data).unwrap();
    for f in ["server.crt", "server.key"] {
        std::fs::copy(certs.join(f), data.join(f)).unwrap();
        std::os::unix::fs::chown(data.join(f), Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(data.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

async fn all_six_sslmodes(major: u32) {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let opts = ClusterOptions {
        settings: vec!["ssl = on".into()],
        ..Default::default()
    };
    let pg = Pg::start_with(major, opts, |data| install_server_cert(certs.path(), data));
    let home = Home::new();
    let ca = certs.path().join("ca.crt");
    let other = certs.path().join("other.crt");
    let add = |name: &str, host: &str, mode: &str, root: Option<&Path>| {
        let mut uri = format!(
            "postgresql://postgres:{}@{host}:{}/postgres?sslmode={mode}",
            pg.password,
            pg.port()
        );
        if let Some(r) = root {
            uri.push_str(&format!("&sslrootcert={}", r.display()));
        }
        home.add_uri(name, &uri);
    };
    add("disable", "127.0.0.1", "disable", None);
    add("allow", "127.0.0.1", "allow", None);
    add("prefer", "127.0.0.1", "prefer", None);
    add("require", "127.0.0.1", "require", None);
    add("verify-ca", "127.0.0.1", "verify-ca", Some(&ca));
    add("verify-full", "localhost", "verify-full", Some(&ca));
    add("verify-ca-wrong-ca", "127.0.0.1", "verify-ca", Some(&other));
    add(
        "verify-full-wrong-host",
        "127.0.0.1",
        "verify-full",
        Some(&ca),
    );

    let ssl = |t: pgsteward::steward::ConnectionTest| t.ssl;
    assert!(!ssl(home.st.test("disable").await.unwrap()));
    assert!(
        !ssl(home.st.test("allow").await.unwrap()),
        "allow tries without TLS first"
    );
    assert!(ssl(home.st.test("prefer").await.unwrap()));
    assert!(ssl(home.st.test("require").await.unwrap()));
    assert!(ssl(home.st.test("verify-ca").await.unwrap()));
    assert!(ssl(home.st.test("verify-full").await.unwrap()));
    let e = home.st.test("verify-ca-wrong-ca").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ConnectFailed, "{e:?}");
    let e = home.st.test("verify-full-wrong-host").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ConnectFailed, "{e:?}");
}
// The PostgreSQL 18 build the harness installs has no TLS support ("SSL is not supported by this
// build"), so TLS is tested against PostgreSQL 15; the client side is the same for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_six_sslmodes_pg15() {
    all_six_sslmodes(15).await
}

/// A server that only accepts TLS: `disable` is refused, `require` gets through.
async fn hostssl_only_server_refuses_plaintext(major: u32) {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let opts = ClusterOptions {
        settings: vec!["ssl = on".into()],
        hba: vec!["hostnossl all all 0.0.0.0/0 reject".into()],
        ..Default::default()
    };
    let pg = Pg::start_with(major, opts, |data| install_server_cert(certs.path(), data));
    let home = Home::new();
    home.add_uri(
        "plain",
        &format!(
            "postgresql://postgres:{}@127.0.0.1:{}/postgres?sslmode=disable",
            pg.password,
            pg.port()
        ),
    );
    home.add_uri(
        "tls",
        &format!(
            "postgresql://postgres:{}@127.0.0.1:{}/postgres?sslmode=require",
            pg.password,
            pg.port()
        ),
    );
    let e = home.st.test("plain").await.unwrap_err();
    assert_eq!(e.sqlstate.as_deref(), Some("28000"), "{e:?}");
    assert!(home.st.test("tls").await.unwrap().ssl);
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostssl_only_server_refuses_plaintext_pg15() {
    hostssl_only_server_refuses_plaintext(15).await
}
