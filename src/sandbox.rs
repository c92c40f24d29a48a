//! The sandbox: a local PostgreSQL that pgsteward creates, fills with a small shop schema and
//! keeps busy, so a new user sees a live dashboard before pointing pgsteward at a real server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::{free_port, Cluster, ClusterOptions};
use crate::conn::spec::ConnectionInput;
use crate::conn::Pool;
use crate::error::{Error, ErrorCode, Result};
use crate::project::{ProjectInput, ProjectSummary};
use crate::secrets::SecretKind;
use crate::steward::Steward;

pub const PROJECT: &str = "sandbox";
const DATABASE: &str = "shop";

#[derive(Debug, Serialize, Deserialize)]
struct State {
    dir: PathBuf,
    port: u16,
    socket_dir: PathBuf,
}

fn state_file(st: &Steward) -> PathBuf {
    st.store().root().join("sandbox.json")
}

/// Where the cluster lives. As root the server runs as an unprivileged user who cannot enter
/// root's home, so the cluster goes under /var/lib instead.
fn cluster_dir(st: &Steward) -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        st.store().root().hash(&mut h);
        PathBuf::from(format!("/var/lib/pgsteward/sandbox-{:016x}", h.finish()))
    } else {
        st.store().root().join("sandbox")
    }
}

const SCHEMA: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, country text, created_at timestamptz DEFAULT now());
CREATE TABLE products (id serial PRIMARY KEY, sku text UNIQUE NOT NULL, title text NOT NULL, price numeric(10,2) NOT NULL, stock int NOT NULL DEFAULT 0);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers, status text NOT NULL DEFAULT 'new', total numeric(12,2) NOT NULL DEFAULT 0, created_at timestamptz DEFAULT now());
CREATE TABLE order_items (order_id bigint REFERENCES orders ON DELETE CASCADE, product_id int REFERENCES products, qty int NOT NULL, price numeric(10,2) NOT NULL, PRIMARY KEY (order_id, product_id));
CREATE INDEX orders_customer_idx ON orders (customer_id);
INSERT INTO customers (name, email, country)
  SELECT 'Customer ' || g, 'c' || g || '@example.com', (ARRAY['DE','FR','US','JP','BR'])[1 + g % 5] FROM generate_series(1, 2000) g;
INSERT INTO products (sku, title, price, stock)
  SELECT 'SKU-' || g, 'Product ' || g, round((5 + random() * 200)::numeric, 2), 100 + g % 50 FROM generate_series(1, 300) g;
INSERT INTO orders (customer_id, status, total, created_at)
  SELECT 1 + g % 2000, (ARRAY['new','paid','shipped','done'])[1 + g % 4], 0, now() - (g || ' minutes')::interval FROM generate_series(1, 20000) g;
INSERT INTO order_items (order_id, product_id, qty, price)
  SELECT o.id, 1 + (o.id * 7) % 300, 1 + o.id % 3, 19.99 FROM orders o;
UPDATE orders o SET total = s.t FROM (SELECT order_id, sum(qty * price) t FROM order_items GROUP BY 1) s WHERE s.order_id = o.id;
ANALYZE;
"#;

/// Create (first time) or start the sandbox and make sure its project exists.
pub async fn start(st: &Arc<Steward>) -> Result<ProjectSummary> {
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || start_blocking(&st2))
        .await
        .map_err(|e| Error::internal(format!("sandbox task: {e}")))?
}

fn start_blocking(st: &Steward) -> Result<ProjectSummary> {
    // One start at a time, across threads and processes (the GUI and the CLI may race).
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(st.store().root().join("sandbox.lock"))
        .map_err(|e| Error::io("opening the sandbox lock", e))?;
    fs2::FileExt::lock_exclusive(&lock).map_err(|e| Error::io("locking the sandbox", e))?;
    if let Ok(p) = st.store().get(PROJECT) {
        if !p.sandbox {
            return Err(Error::new(
                ErrorCode::ProjectExists,
                "A project named \"sandbox\" exists and is not pgsteward's sandbox; rename it to use the sandbox.",
            ));
        }
    }
    let existing: Option<State> = std::fs::read(state_file(st))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let (mut cluster, fresh) = match existing.filter(|s| s.dir.join("data/PG_VERSION").exists()) {
        Some(s) => {
            let mut c = Cluster::open(&s.dir, s.port, &s.socket_dir)?;
            if !c.is_running() {
                if std::net::TcpListener::bind(("127.0.0.1", c.port)).is_err() {
                    c.port = free_port()?;
                }
                c.start()?;
            }
            // The keyring may have been reset since: we own this server, so set a new password.
            if st.secrets().get(PROJECT, SecretKind::Password)?.is_none() {
                let password = uuid::Uuid::new_v4().simple().to_string();
                c.psql(
                    "postgres",
                    &format!("ALTER ROLE postgres PASSWORD '{password}'"),
                )?;
                st.secrets().set(PROJECT, SecretKind::Password, &password)?;
            }
            (c, false)
        }
        None => {
            let dir = cluster_dir(st);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::io("clearing an old sandbox", e))?;
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io("creating the sandbox folder", e))?;
            let (major, bin) = Cluster::find_binaries(None)?;
            let password = uuid::Uuid::new_v4().simple().to_string();
            let opts = ClusterOptions {
                password: password.clone(),
                ..Default::default()
            };
            let c = Cluster::init(&dir, &bin, major, &opts)?;
            c.start()?;
            c.psql("postgres", &format!("CREATE DATABASE {DATABASE}"))?;
            c.psql(DATABASE, SCHEMA)?;
            st.secrets().set(PROJECT, SecretKind::Password, &password)?;
            (c, true)
        }
    };
    cluster.detach();
    let state = State {
        dir: cluster.data_dir.parent().unwrap().to_path_buf(),
        port: cluster.port,
        socket_dir: cluster.socket_dir.clone(),
    };
    std::fs::write(
        state_file(st),
        serde_json::to_vec_pretty(&state).expect("serializable"),
    )
    .map_err(|e| Error::io("saving the sandbox state", e))?;
    let input = ProjectInput {
        name: PROJECT.into(),
        connection: ConnectionInput::Uri {
            uri: format!(
                "postgresql://postgres@127.0.0.1:{}/{DATABASE}?sslmode=disable",
                cluster.port
            ),
        },
        password: None,
    };
    match st.store().get(PROJECT) {
        Ok(_) => st.update(PROJECT, &input),
        Err(_) => {
            let _ = fresh;
            st.create_with(&input, true)
        }
    }
}

/// Stop the sandbox server, if it runs.
pub fn stop(st: &Steward) -> Result<bool> {
    let Some(s) = std::fs::read(state_file(st))
        .ok()
        .and_then(|b| serde_json::from_slice::<State>(&b).ok())
    else {
        return Ok(false);
    };
    let c = Cluster::open(&s.dir, s.port, &s.socket_dir)?;
    if c.is_running() {
        c.stop()?;
        return Ok(true);
    }
    Ok(false)
}

/// Small, steady background work so the sandbox's charts move: a few transactions a second.
pub fn spawn_activity(pool: Pool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n: i64 = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            n += 1;
            let Ok(mut conn) = pool.acquire().await else {
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            };
            let customer = 1 + (n * 37) % 2000;
            let _ = sqlx::query(crate::sql!("SELECT o.id, o.total FROM orders o WHERE o.customer_id = $1 ORDER BY o.created_at DESC LIMIT 10"))
                .bind(customer as i32)
                .fetch_all(&mut *conn)
                .await;
            if n % 4 == 0 {
                let _ = sqlx::query(crate::sql!("UPDATE orders SET status = 'paid' WHERE id = (SELECT id FROM orders WHERE status = 'new' ORDER BY id DESC LIMIT 1)"))
                    .execute(&mut *conn)
                    .await;
                let _ = sqlx::query(crate::sql!(
                    "INSERT INTO orders (customer_id, total) VALUES ($1, $2)"
                ))
                .bind(customer as i32)
                .bind(((n % 500) as f64) + 0.99)
                .execute(&mut *conn)
                .await;
            }
        }
    })
}
