//! The PostgreSQL side of [`super::Conn`]: the connection URL (TLS per its
//! `sslmode`), a small pool of reader connections, per-connection statement
//! caches, and the SQL rewrite from the shared dialect.

use super::{DbError, Param};
use postgres::types::{FromSql, Type};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A PostgreSQL error as one line: the server's message and SQLSTATE, or
/// the client's reason with its cause. Never the URL.
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("postgres: {} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("postgres: {e}: {cause}"),
        None => format!("postgres: {e}"),
    }
}

/// Run `f`, which blocks on the client's own runtime, also from a task of
/// the exporter's (multi-thread) runtime: rust-postgres' blocking client
/// refuses to start its runtime inside another one. On a blocking-pool
/// thread or outside any runtime this is `f()`.
pub(super) fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Any column value, read only to tell NULL from not NULL.
pub(super) struct Raw;

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn type_err(r: &postgres::Row, i: usize, expected: &'static str) -> DbError {
    DbError::Type {
        col: i,
        expected,
        found: r
            .columns()
            .get(i)
            .map_or("no such column".into(), |c| c.type_().name().to_string()),
    }
}

/// An integer column of any width (and booleans as 0/1, as SQLite returns
/// comparisons).
pub(super) fn get_i64(r: &postgres::Row, i: usize) -> Result<i64, DbError> {
    let ty = r.columns().get(i).map(|c| c.type_().clone());
    Ok(match ty {
        Some(Type::INT8) => r.try_get::<_, i64>(i)?,
        Some(Type::INT4) => r.try_get::<_, i32>(i)?.into(),
        Some(Type::INT2) => r.try_get::<_, i16>(i)?.into(),
        Some(Type::BOOL) => r.try_get::<_, bool>(i)?.into(),
        _ => return Err(type_err(r, i, "an integer (CAST(... AS BIGINT))")),
    })
}

pub(super) fn get_f64(r: &postgres::Row, i: usize) -> Result<f64, DbError> {
    let ty = r.columns().get(i).map(|c| c.type_().clone());
    Ok(match ty {
        Some(Type::FLOAT8) => r.try_get::<_, f64>(i)?,
        Some(Type::FLOAT4) => r.try_get::<_, f32>(i)?.into(),
        Some(Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL) => get_i64(r, i)? as f64,
        _ => return Err(type_err(r, i, "a number (CAST(... AS DOUBLE PRECISION))")),
    })
}

/// The shared dialect in PostgreSQL's spelling: `?N` parameters become
/// `$N`, and SQLite's index hints (`INDEXED BY name`) go (the planner
/// chooses). String literals are left as they are.
pub fn translate(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') && !sql.contains("INDEXED BY") {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut in_str = false;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if !in_str && rest.starts_with("INDEXED BY ") {
            let after = &rest["INDEXED BY ".len()..];
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            rest = after[end..].trim_start_matches(' ');
            continue;
        }
        if !in_str && rest.starts_with("--") {
            // A comment, to the end of its line: copied as it is.
            let end = rest.find('\n').unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        if c == '\'' {
            in_str = !in_str;
        }
        out.push(if c == '?' && !in_str { '$' } else { c });
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// The advisory lock every write transaction holds ("nhi-wri" in ASCII).
pub const WRITE_LOCK: i64 = 0x006e_6869_2d77_7269;

type Cache = HashMap<String, postgres::Statement>;

/// Idle connections for readers, with their statement caches.
pub struct Pool {
    target: Target,
    idle: Mutex<Vec<(postgres::Client, Cache)>>,
}

/// Readers kept idle at most; more are opened when needed and closed after.
const MAX_IDLE: usize = 4;

impl Pool {
    pub fn new(target: Target) -> Arc<Self> {
        Arc::new(Pool {
            target,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A connection from the pool (or a new one), returned when dropped.
    pub fn get(self: &Arc<Self>) -> Result<PgConn, DbError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let (client, cache) = match idle {
            Some((c, cache)) if !c.is_closed() => (c, cache),
            _ => (self.target.connect()?, Cache::new()),
        };
        Ok(PgConn {
            inner: RefCell::new(Some((client, cache))),
            home: Some(self.clone()),
        })
    }
}

/// One PostgreSQL connection. Used from one thread at a time (the store's
/// writer mutex, or a reader's own connection), like rusqlite's.
pub struct PgConn {
    inner: RefCell<Option<(postgres::Client, Cache)>>,
    home: Option<Arc<Pool>>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        let Some((client, cache)) = self.inner.get_mut().take() else {
            return;
        };
        if let Some(home) = &self.home {
            if !client.is_closed() {
                let mut idle = home.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < MAX_IDLE {
                    idle.push((client, cache));
                    return;
                }
            }
        }
        // Closing the client blocks on (and drops) its runtime.
        off_runtime(move || drop(client));
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|p| p.into_inner()));
        off_runtime(move || drop(idle));
    }
}

fn pg_params<'a>(p: &'a [&'a dyn Param]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    p.iter().map(|p| p.pg()).collect()
}

impl PgConn {
    /// A connection of its own (the writer), not returned to a pool.
    pub fn connect(target: &Target) -> Result<Self, DbError> {
        Ok(PgConn {
            inner: RefCell::new(Some((target.connect()?, Cache::new()))),
            home: None,
        })
    }

    /// The connection is gone (server restarted): replace it.
    pub fn is_closed(&self) -> bool {
        self.inner
            .borrow()
            .as_ref()
            .is_none_or(|(c, _)| c.is_closed())
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client, &mut Cache) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut inner = self
            .inner
            .try_borrow_mut()
            .map_err(|_| DbError::Other("the PostgreSQL connection is in use".into()))?;
        let (client, cache) = inner
            .as_mut()
            .ok_or_else(|| DbError::Other("the PostgreSQL connection is closed".into()))?;
        off_runtime(|| f(client, cache))
    }

    pub(super) fn prepare(&self, sql: &str, cached: bool) -> Result<postgres::Statement, DbError> {
        self.with(|client, cache| {
            if let Some(s) = cache.get(sql) {
                return Ok(s.clone());
            }
            let stmt = client.prepare(&translate(sql))?;
            if cached {
                cache.insert(sql.to_string(), stmt.clone());
            }
            Ok(stmt)
        })
    }

    pub(super) fn execute(
        &self,
        stmt: &postgres::Statement,
        p: &[&dyn Param],
    ) -> Result<usize, DbError> {
        self.with(|client, _| Ok(client.execute(stmt, &pg_params(p))? as usize))
    }

    pub(super) fn query(
        &self,
        stmt: &postgres::Statement,
        p: &[&dyn Param],
    ) -> Result<Vec<postgres::Row>, DbError> {
        self.with(|client, _| Ok(client.query(stmt, &pg_params(p))?))
    }

    pub(super) fn batch(&self, sql: &str) -> Result<(), DbError> {
        self.with(|client, _| Ok(client.batch_execute(sql)?))
    }
}

/// Where the store is: the parsed URL of `state.url_file` and its TLS.
#[derive(Clone)]
pub struct Target {
    config: postgres::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Target {
    /// Parse a `postgres://user:password@host:port/db?sslmode=...` URL.
    /// `sslmode`: `disable` (plain), `prefer` (the default: TLS when the
    /// server offers it), `require`, `verify-ca`, `verify-full`. Every TLS
    /// connection verifies the server's certificate and name against the
    /// system's roots, or against `sslrootcert=PATH` when given: stricter
    /// than libpq's `prefer`/`require`, which encrypt without verifying.
    /// Errors never include the URL (it holds the password).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw.trim()).map_err(|e| {
            format!("is not a URL ({e}); write postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "has scheme {:?}; write postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                url.scheme()
            ));
        }
        let mut mode = "prefer".to_string();
        let mut rootcert = None;
        let mut kept = url.clone();
        kept.set_query(None);
        {
            let mut q = kept.query_pairs_mut();
            for (k, v) in url.query_pairs() {
                match &*k {
                    "sslmode" => mode = v.into_owned(),
                    "sslrootcert" => rootcert = Some(v.into_owned()),
                    _ => {
                        q.append_pair(&k, &v);
                    }
                }
            }
        }
        let mut s = kept.to_string();
        if s.ends_with('?') {
            s.pop();
        }
        let mut config: postgres::Config = s
            .parse()
            .map_err(|e: postgres::Error| format!("cannot be used: {}", describe(&e)))?;
        use postgres::config::SslMode;
        let ssl = match mode.as_str() {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" | "verify-ca" | "verify-full" => SslMode::Require,
            other => {
                return Err(format!(
                    "has sslmode={other}; use disable, prefer, require, verify-ca or verify-full"
                ))
            }
        };
        config.ssl_mode(ssl);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.keepalives(true);
        let tls = match ssl {
            SslMode::Disable => None,
            _ => Some(Arc::new(tls_config(rootcert.as_deref())?)),
        };
        let shown = format!(
            "postgres://{}:{}/{}",
            url.host_str().unwrap_or("localhost"),
            url.port().unwrap_or(5432),
            url.path().trim_start_matches('/')
        );
        Ok(Target { config, tls, shown })
    }

    /// The URL without user, password or parameters, for logs and errors.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn connect(&self) -> Result<postgres::Client, DbError> {
        off_runtime(|| self.connect_here())
    }

    fn connect_here(&self) -> Result<postgres::Client, DbError> {
        Ok(match &self.tls {
            None => self.config.connect(postgres::NoTls)?,
            Some(tls) => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    (**tls).clone(),
                ))?,
        })
    }
}

fn tls_config(rootcert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match rootcert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for c in certs {
                let c = c.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
            // Zero roots would refuse every server with an error that does
            // not point here.
            if roots.is_empty() {
                return Err(format!(
                    "sslrootcert {path}: no PEM certificate in the file (expected the CA certificate, -----BEGIN CERTIFICATE-----)"
                ));
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_certificate_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = tls_config(path.to_str()).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        assert!(e.contains("ca.pem"), "{e}");
    }

    #[test]
    fn translate_rewrites_parameters_and_hints_only() {
        assert_eq!(
            translate("SELECT a FROM t INDEXED BY t_i WHERE a = ?1 AND b = '?2' AND c = ?12"),
            "SELECT a FROM t WHERE a = $1 AND b = '?2' AND c = $12"
        );
        assert!(matches!(translate("SELECT 1"), Cow::Borrowed(_)));
        // A comment's apostrophe opens no string; its `?` is not a
        // parameter.
        assert_eq!(
            translate("SELECT ?1 -- the finding's id?\n, '?' || ?2"),
            "SELECT $1 -- the finding's id?\n, '?' || $2"
        );
    }

    #[test]
    fn urls_are_parsed_without_showing_the_password() {
        let t = Target::parse(
            " postgres://nhi:S3cr3tPassw0rd@db.example:6543/nhi?sslmode=disable&application_name=x\n",
        )
        .unwrap();
        assert_eq!(t.shown(), "postgres://db.example:6543/nhi");
        assert!(!format!("{t:?}").contains("S3cr3t"));
        assert_eq!(t.config.get_dbname(), Some("nhi"));
        assert_eq!(t.config.get_ports(), &[6543]);
        assert!(t.tls.is_none());
        let e = Target::parse("postgres://u:S3cr3tPassw0rd@h/db?sslmode=bogus").unwrap_err();
        assert!(e.contains("sslmode=bogus") && !e.contains("S3cr3t"), "{e}");
        let e = Target::parse("mysql://u:S3cr3tPassw0rd@h/db").unwrap_err();
        assert!(e.contains("mysql") && !e.contains("S3cr3t"), "{e}");
        assert!(Target::parse("postgres://u:p@h/db?sslmode=verify-full")
            .unwrap()
            .tls
            .is_some());
    }
}
