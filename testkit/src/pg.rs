//! Throwaway PostgreSQL for tests.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

/// A database made for one test; dropped (best effort) when the test ends.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The admin URL of the server tests use: `DATABASE_URL`, or a cluster
/// started for this process.
pub fn server_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    static CLUSTER: OnceLock<String> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            start_shared_cluster().unwrap_or_else(|e| panic!("no DATABASE_URL and cannot start PostgreSQL: {e}"))
        })
        .clone()
}

/// Creates an empty database for one test.
pub async fn fresh_database() -> TestDatabase {
    fresh_database_on(&server_url()).await
}

/// Creates an empty database for one test on the server at `admin_url`
/// (a [`PgCluster`] of the test's own, for one it restarts).
pub async fn fresh_database_on(admin_url: &str) -> TestDatabase {
    let admin_url = admin_url.to_string();
    let name = format!("polyscale_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| panic!("connecting to {admin_url}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    TestDatabase { url: with_database(&admin_url, &name), admin_url, name }
}

/// `postgres://u@h:p/db?x` with the database replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The directory holding `initdb` and `postgres`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path().join("bin")).collect();
    versions.sort();
    versions.into_iter().rev().find(|d| d.join("initdb").exists())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// initdb refuses to run as root: run the server as `postgres` (or
/// `nobody`) when this process is root.
fn unprivileged_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in [c"postgres", c"nobody"] {
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if !pw.is_null() {
            return Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) });
        }
    }
    None
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Removes clusters left by test processes that are gone.
fn remove_stale_clusters(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(pid) =
            name.strip_prefix("pg-").and_then(|p| p.split('-').next()).and_then(|p| p.parse::<u32>().ok())
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A PostgreSQL cluster owned by this process, which can be stopped and
/// started again (to test restarts). The server gets a parent-death signal
/// so it stops when the thread that started it (and so the process) ends.
pub struct PgCluster {
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    server: Option<Child>,
}

impl PgCluster {
    /// initdb + start, on a free port.
    pub fn start() -> Result<Self, String> {
        let bin = bin_dir().ok_or("PostgreSQL server binaries (initdb) not found")?;
        let root = std::env::temp_dir().join("polyscale-test-pg");
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        remove_stale_clusters(&root);
        let dir = root.join(format!("pg-{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let user = unprivileged_user();
        if let Some((uid, gid)) = user {
            std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
                .map_err(|e| e.to_string())?;
            chown_tree(&dir, uid, gid).map_err(|e| e.to_string())?;
        }
        let data = dir.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"]).arg(&data);
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port = free_port().map_err(|e| e.to_string())?;
        let mut cluster = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            data,
            dir,
            port,
            user,
            server: None,
        };
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Starts the server again after [`PgCluster::stop`].
    pub fn start_server(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"])
            .arg("-k")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        unsafe {
            cmd.pre_exec(|| {
                // SIGQUIT: immediate shutdown when the starting thread dies.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                Ok(())
            });
        }
        self.server = Some(cmd.spawn().map_err(|e| format!("postgres: {e}"))?);
        wait_ready(&self.url, Duration::from_secs(30))
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            unsafe {
                libc::kill(server.id() as i32, libc::SIGINT);
            }
            let _ = server.wait();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_ready(url: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let url = url.to_string();
        let ready = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()
                .map(|rt| rt.block_on(PgConnection::connect(&url)).is_ok())
                .unwrap_or(false)
        })
        .join()
        .unwrap_or(false);
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("PostgreSQL did not start within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the process-wide cluster on a thread that lives as long as the
/// process, so the server outlives every test of the process and dies
/// with it.
fn start_shared_cluster() -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-postgres".into())
        .spawn(move || {
            let cluster = PgCluster::start();
            let _ = tx.send(cluster.as_ref().map(|c| c.url.clone()).map_err(Clone::clone));
            let _keep = cluster;
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}
