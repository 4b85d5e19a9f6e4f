//! A real PostgreSQL server for tests: Debian's `postgresql` binaries,
//! `initdb` into a temporary directory, started once per test binary on a
//! free loopback port, as an unprivileged user (`nobody` when the tests run
//! as root: PostgreSQL refuses root). Password authentication (SCRAM) over
//! TCP, so the store's URLs carry a password as users' do. The server gets
//! SIGQUIT (immediate shutdown) when the test binary exits.
//!
//! Shared by the library's unit tests (`#[path]` include) and the
//! integration tests (`tests/common`). A missing installation fails the
//! test with how to install it: never skipped.
//!
//! [`tls_server`] is another server of the test binary: TLS only (`ssl=on`
//! with the test's certificate; `pg_hba.conf` has `hostssl` lines only, so
//! plaintext TCP is refused) and `log_connections=on`. The harness itself
//! talks to it over its Unix socket.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser the tests connect as, and its (fake) password.
pub const USER: &str = "nhi";
pub const PASSWORD: &str = "pg-test-password";

pub struct PgServer {
    pub port: u16,
    pub dir: PathBuf,
    pub bin: PathBuf,
    /// `Some` for a [`tls_server`].
    pub tls: Option<Tls>,
    child: Mutex<Option<Child>>,
    created: Mutex<()>,
}

/// The TLS of a [`tls_server`]: its certificate and key (PEM; copied into
/// the server's directory, the key readable by the server's user only, as
/// PostgreSQL demands), and the CA file that verifies the certificate (put
/// in [`PgServer::url`]'s `sslrootcert`).
#[derive(Clone, Debug)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// The directory of `initdb`, `postgres`, `pg_dump`, `pg_ctl`: `$NHI_PG_BIN`,
/// else the newest `/usr/lib/postgresql/*/bin` (Debian).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NHI_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL was not found in /usr/lib/postgresql/*/bin: run scripts/test.sh \
             (it installs Debian's postgresql package), or set NHI_PG_BIN"
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Run as `nobody` when root, and die with the test binary.
fn unprivileged(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    // SAFETY: prctl is async-signal-safe; it only sets a flag of the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            Ok(())
        });
    }
}

fn chown_nobody(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: a valid C string path.
    let rc = unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
    assert_eq!(rc, 0, "chown {}", p.display());
}

/// The server of this test binary, started on first use.
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| on_own_thread(None))
}

/// The TLS-only server of this test binary, started on first use with
/// `tls` (a later call's `tls` must be the same).
pub fn tls_server(tls: &Tls) -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    let s = SERVER.get_or_init(|| on_own_thread(Some(tls.clone())));
    let started = s.tls.as_ref().expect("a TLS server");
    assert!(
        started.cert == tls.cert && started.key == tls.key && started.ca == tls.ca,
        "the TLS server was started with {started:?}, not {tls:?}"
    );
    s
}

fn on_own_thread(tls: Option<Tls>) -> PgServer {
    // Started from a thread that never ends: the server is sent
    // SIGQUIT when its parent thread exits, which is then the process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("pg-server".into())
        .spawn(move || {
            let _ = tx.send(start(tls));
            loop {
                std::thread::park();
            }
        })
        .expect("spawn the pg-server thread");
    rx.recv().expect("the PostgreSQL server started")
}

/// Remove the directories of earlier runs whose test process is gone (the
/// server's directory outlives its process: it is removed by the next run).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        if !name.to_string_lossy().starts_with("nhi-pg-") {
            continue;
        }
        let owner: Option<i32> = std::fs::read_to_string(path.join("owner"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = owner.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if !alive {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A new temporary directory that outlives the test binary (a server's
/// data, files the server reads): removed by a later run once this process
/// is gone, as stale ones are removed now.
pub fn scratch_dir() -> PathBuf {
    remove_stale_dirs();
    let dir = tempfile::Builder::new()
        .prefix("nhi-pg-")
        .tempdir()
        .expect("a temporary directory")
        .keep();
    std::fs::write(dir.join("owner"), std::process::id().to_string())
        .expect("write the owner file");
    dir
}

fn start(tls: Option<Tls>) -> PgServer {
    let bin = bin_dir();
    let dir = scratch_dir();
    chown_nobody(&dir);
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, PASSWORD).expect("write the password file");
    chown_nobody(&pwfile);
    let data = dir.join("data");
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .args(["-D"])
        .arg(&data)
        .args(["-U", USER, "--pwfile"])
        .arg(&pwfile)
        .args([
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-locale",
            "--encoding=UTF8",
            "--no-sync",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    unprivileged(&mut initdb);
    let out = initdb.output().expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(tls) = &tls {
        configure_tls(&dir, tls);
    }
    let port = free_port();
    let child = postmaster(&bin, &dir, port);
    let server = PgServer {
        port,
        dir,
        bin,
        tls,
        child: Mutex::new(Some(child)),
        created: Mutex::new(()),
    };
    server.wait_ready("postgres");
    server
}

/// TLS only for the server of `dir`: the certificate and key copied into
/// `dir` (owned by the server's user, the key 0600: PostgreSQL refuses a
/// key others can read), `ssl=on` and `log_connections=on` in
/// `postgresql.conf`, and a `pg_hba.conf` that accepts the Unix socket
/// (the harness) and TLS TCP connections with a password, nothing else.
fn configure_tls(dir: &Path, tls: &Tls) {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    for (from, to, mode) in [(&tls.cert, &cert, 0o644), (&tls.key, &key, 0o600)] {
        std::fs::copy(from, to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
        chown_nobody(to);
    }
    let quoted = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
    let data = dir.join("data");
    // Appended to (and written over) the files initdb made: they keep
    // their owner and mode.
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .expect("open postgresql.conf");
    write!(
        conf,
        "\nssl = on\nssl_cert_file = {}\nssl_key_file = {}\nlog_connections = on\n",
        quoted(&cert),
        quoted(&key)
    )
    .expect("write postgresql.conf");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n\
         hostssl all all ::1/128 scram-sha-256\n",
    )
    .expect("write pg_hba.conf");
}

/// Start the postmaster of `dir/data` on `port`, logging to `dir/log`.
fn postmaster(bin: &Path, dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .expect("open the server log");
    chown_nobody(&dir.join("log"));
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(dir)
        .args([
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=64MB",
            // Small WAL: test servers keep no replica and no archive.
            "-c",
            "wal_level=minimal",
            "-c",
            "max_wal_senders=0",
            "-c",
            "min_wal_size=32MB",
            "-c",
            "max_wal_size=64MB",
        ])
        .stdout(Stdio::null())
        .stderr(log);
    unprivileged(&mut cmd);
    cmd.spawn().expect("start postgres")
}

impl PgServer {
    /// The URL of database `db`, with the password: TLS off (loopback), or
    /// on a [`tls_server`] `verify-full` of `localhost` against its CA.
    pub fn url(&self, db: &str) -> String {
        match &self.tls {
            None => format!(
                "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable",
                self.port
            ),
            Some(tls) => format!(
                "postgres://{USER}:{PASSWORD}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
                self.port,
                tls.ca.display()
            ),
        }
    }

    /// A connection of the harness: over TCP as [`PgServer::url`] says, or
    /// to a [`tls_server`] over its Unix socket (the harness has no TLS).
    fn connect(&self, db: &str) -> Result<postgres::Client, postgres::Error> {
        match &self.tls {
            None => postgres::Client::connect(&self.url(db), postgres::NoTls),
            Some(_) => postgres::Config::new()
                .host_path(&self.dir)
                .port(self.port)
                .user(USER)
                .dbname(db)
                .connect(postgres::NoTls),
        }
    }

    pub fn client(&self, db: &str) -> postgres::Client {
        self.connect(db)
            .unwrap_or_else(|e| panic!("connect to test database {db}: {e}; log: {}", self.log()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn wait_ready(&self, db: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.connect(db) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("PostgreSQL did not come up: {e}; log: {}", self.log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A new, empty database (dropped first if a previous run left it).
    pub fn fresh_db(&self, name: &str) -> String {
        // CREATE DATABASE copies template1 and fails while another copy
        // runs: one at a time.
        let _g = self.created.lock().unwrap_or_else(|p| p.into_inner());
        let mut c = self.client("postgres");
        // Two statements: CREATE DATABASE cannot run in the implicit
        // transaction of a multi-statement query.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            c.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }
        self.url(name)
    }

    /// A new, empty database `name`, and the file `dir/pg-url` holding its
    /// URL (what `state.url_file` names).
    pub fn fresh_url_file(&self, dir: &Path, name: &str) -> PathBuf {
        let file = dir.join("pg-url");
        std::fs::write(&file, self.fresh_db(name)).expect("write the URL file");
        file
    }

    /// The database, created if missing (a store reopened by a test).
    pub fn db(&self, name: &str) -> String {
        let _g = self.created.lock().unwrap_or_else(|p| p.into_inner());
        let mut c = self.client("postgres");
        let exists = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .expect("query pg_database")
            .is_some();
        if !exists {
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| panic!("create database {name}: {e:?}"));
        }
        self.url(name)
    }

    /// Stop the server at once (SIGQUIT: immediate shutdown, every
    /// connection cut, as a crash or a failover does).
    pub fn stop_now(&self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGQUIT) };
            let _ = c.wait();
        }
    }

    /// Start it again on the same port and data (after [`stop_now`]).
    /// The server then stops when the calling thread ends.
    pub fn start_again(&self) {
        let child = postmaster(&self.bin, &self.dir, self.port);
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        self.wait_ready("postgres");
    }
}
