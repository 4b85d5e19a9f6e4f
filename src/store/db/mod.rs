//! One connection type over the two store backends: SQLite (rusqlite, the
//! embedded default) and PostgreSQL (the blocking client of rust-postgres,
//! for replicas). The store, the KPIs and the landing page write their SQL
//! once, in the dialect both engines accept (`ON CONFLICT`, `RETURNING`,
//! `COUNT(*) FILTER`, `CASE` instead of SQLite's two-argument `MIN`/`MAX`),
//! with `?N` parameters; [`pg::translate`] rewrites what PostgreSQL spells
//! differently.
//!
//! Written here rather than taken from a crate: the store needs rusqlite's
//! own API (WAL, pragmas, cached statements, single-writer semantics) and
//! PostgreSQL's; the crates that cover both (sqlx `Any`, diesel) would
//! replace rusqlite and make every query async or generated.
//! The surface mirrors rusqlite's (`query_row`, `prepare_cached`,
//! `query_map`, `Row::get`), so the SQL code reads the same on both.

pub mod pg;

use std::ops::Deref;

/// A database error of either backend, or a value of an unexpected type.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Lite(#[from] rusqlite::Error),
    #[error("{}", pg::describe(.0))]
    Pg(#[from] postgres::Error),
    #[error("the query returned no rows")]
    NoRows,
    #[error("column {col}: expected {expected}, found {found}")]
    Type {
        col: usize,
        expected: &'static str,
        found: String,
    },
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// The connection to the server is gone (PostgreSQL restarted or the
    /// network dropped): the next use reconnects.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, DbError::Pg(e) if e.is_closed() || e.as_db_error().is_none() && e.code().is_none())
    }
}

/// `.optional()` on a single-row query, as rusqlite's extension.
pub trait OptionalExt<T> {
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExt<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) | Err(DbError::Lite(rusqlite::Error::QueryReturnedNoRows)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A statement parameter: any value both drivers can bind. Integers are
/// `i64` (PostgreSQL columns are `BIGINT`), byte strings `&[u8]`/`Vec<u8>`.
pub trait Param {
    fn lite(&self) -> &dyn rusqlite::ToSql;
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync> Param for T {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync) {
        self
    }
}

/// The parameters of one execution: `params![a, b]`, `[a]`, or `[]`.
pub trait Params {
    fn list(&self) -> Vec<&dyn Param>;
}

impl Params for &[&dyn Param] {
    fn list(&self) -> Vec<&dyn Param> {
        self.to_vec()
    }
}

impl Params for [&dyn Param; 0] {
    fn list(&self) -> Vec<&dyn Param> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: Param> Params for [T; $n] {
            fn list(&self) -> Vec<&dyn Param> {
                self.iter().map(|p| p as &dyn Param).collect()
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8);

/// `params![a, b, c]`: a parameter list of mixed types.
#[macro_export]
macro_rules! db_params {
    () => { &[] as &[&dyn $crate::store::db::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::db::Param),+] as &[&dyn $crate::store::db::Param] };
}
pub use crate::db_params as params;

/// Rows per multi-row `INSERT` ([`values_list`], [`Conn::execute_rows`]):
/// one statement, a round trip on PostgreSQL, instead of one per row.
pub const ROWS_PER_INSERT: usize = 256;

/// The `VALUES` list of a multi-row `INSERT`: `rows` tuples of `cols`
/// numbered parameters, `(?1, ?2), (?3, ?4)`. One statement (one round trip
/// on PostgreSQL) writes many rows; keep `rows × cols` under 32766
/// (SQLite's limit on parameters; PostgreSQL's is 65535): [`ROWS_PER_INSERT`]
/// rows of up to 127 columns do.
pub fn values_list(rows: usize, cols: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let marks: Vec<String> = (1..=cols).map(|i| format!("?{}", r * cols + i)).collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    tuples.join(", ")
}

/// A column index (`usize`, as rusqlite's `get(0)`).
pub trait RowIndex: Copy {
    fn idx(self) -> usize;
}

impl RowIndex for usize {
    fn idx(self) -> usize {
        self
    }
}

/// A column value both backends can return.
pub trait FromDb: Sized {
    fn from_lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError>;
    fn from_pg(r: &postgres::Row, i: usize) -> Result<Self, DbError>;
}

impl<T: FromDb> FromDb for Option<T> {
    fn from_lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError> {
        match r.get_ref(i)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            _ => T::from_lite(r, i).map(Some),
        }
    }
    fn from_pg(r: &postgres::Row, i: usize) -> Result<Self, DbError> {
        let raw: Option<pg::Raw> = r.try_get(i)?;
        match raw {
            None => Ok(None),
            Some(_) => T::from_pg(r, i).map(Some),
        }
    }
}

macro_rules! lite_get {
    ($t:ty) => {
        fn from_lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError> {
            Ok(r.get::<_, $t>(i)?)
        }
    };
}

impl FromDb for i64 {
    lite_get!(i64);
    fn from_pg(r: &postgres::Row, i: usize) -> Result<Self, DbError> {
        pg::get_i64(r, i)
    }
}

impl FromDb for f64 {
    lite_get!(f64);
    fn from_pg(r: &postgres::Row, i: usize) -> Result<Self, DbError> {
        pg::get_f64(r, i)
    }
}

impl FromDb for bool {
    lite_get!(bool);
    fn from_pg(r: &postgres::Row, i: usize) -> Result<Self, DbError> {
        Ok(pg::get_i64(r, i)? != 0)
    }
}

impl FromDb for String {
    lite_get!(String);
    fn from_pg(r: &postgres::Row, i: usize) -> Result<Self, DbError> {
        Ok(r.try_get(i)?)
    }
}

impl FromDb for Vec<u8> {
    lite_get!(Vec<u8>);
    fn from_pg(r: &postgres::Row, i: usize) -> Result<Self, DbError> {
        Ok(r.try_get(i)?)
    }
}

/// Any column value, for comparing stores row by row (tests, `store
/// migrate`): integers, reals, text, bytes or NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl FromDb for Value {
    fn from_lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError> {
        use rusqlite::types::ValueRef as V;
        Ok(match r.get_ref(i)? {
            V::Null => Value::Null,
            V::Integer(n) => Value::Integer(n),
            V::Real(x) => Value::Real(x),
            V::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            V::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
    fn from_pg(r: &postgres::Row, i: usize) -> Result<Self, DbError> {
        use postgres::types::Type;
        if r.try_get::<_, Option<pg::Raw>>(i)?.is_none() {
            return Ok(Value::Null);
        }
        let ty = r.columns().get(i).map(|c| c.type_().clone());
        Ok(match ty {
            Some(Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL) => {
                Value::Integer(pg::get_i64(r, i)?)
            }
            Some(Type::FLOAT8 | Type::FLOAT4) => Value::Real(pg::get_f64(r, i)?),
            Some(Type::BYTEA) => Value::Blob(r.try_get(i)?),
            _ => Value::Text(r.try_get(i)?),
        })
    }
}

/// One result row.
pub enum Row<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl<'a> Row<'a> {
    /// A text column borrowed from the row (`None` for NULL).
    pub fn get_str(&self, i: usize) -> Result<Option<&'a str>, DbError> {
        match *self {
            Row::Lite(r) => r
                .get_ref(i)?
                .as_str_or_null()
                .map_err(|e| DbError::Lite(e.into())),
            Row::Pg(r) => Ok(r.try_get(i)?),
        }
    }

    pub fn get<I: RowIndex, T: FromDb>(&self, i: I) -> Result<T, DbError> {
        match self {
            Row::Lite(r) => T::from_lite(r, i.idx()),
            Row::Pg(r) => T::from_pg(r, i.idx()),
        }
    }
}

/// A connection of either backend.
pub enum Conn {
    Lite(rusqlite::Connection),
    Pg(Box<pg::PgConn>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Lite(_) => "Conn::Lite",
            Conn::Pg(_) => "Conn::Pg",
        })
    }
}

impl Conn {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    /// The SQLite connection (migrations, pragmas): `None` on PostgreSQL.
    pub fn lite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Lite(c) => Some(c),
            Conn::Pg(_) => None,
        }
    }

    pub fn execute<P: Params>(&self, sql: &str, p: P) -> Result<usize, DbError> {
        self.prepare(sql)?.execute(p)
    }

    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Conn::Lite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(c) => c.batch(sql),
        }
    }

    pub fn query_row<T, P: Params, F>(&self, sql: &str, p: P, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&Row<'_>) -> Result<T, DbError>,
    {
        self.prepare(sql)?.query_row(p, f)
    }

    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        Ok(Stmt(match self {
            Conn::Lite(c) => StmtInner::Lite(c.prepare(sql)?),
            Conn::Pg(c) => StmtInner::Pg(c, c.prepare(sql, false)?),
        }))
    }

    /// A statement kept prepared on the connection for reuse.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        Ok(Stmt(match self {
            Conn::Lite(c) => StmtInner::LiteCached(c.prepare_cached(sql)?),
            Conn::Pg(c) => StmtInner::Pg(c, c.prepare(sql, true)?),
        }))
    }

    /// The id the last `INSERT` gave its row.
    pub fn last_insert_rowid(&self) -> Result<i64, DbError> {
        match self {
            Conn::Lite(c) => Ok(c.last_insert_rowid()),
            Conn::Pg(_) => self.query_row("SELECT lastval()", [], |r| r.get(0)),
        }
    }

    /// Begin a transaction; rolled back when dropped without `commit`.
    /// On PostgreSQL it takes the store's write lock (a transaction-level
    /// advisory lock): replicas write one transaction at a time, as
    /// SQLite's single writer does, so concurrent polls never interleave
    /// their accounting of shared rows (exposures, counters, time counts).
    pub fn transaction(&mut self) -> Result<Tx<'_>, DbError> {
        let pg = format!("BEGIN; SELECT pg_advisory_xact_lock({})", pg::WRITE_LOCK);
        self.begin(&pg)
    }

    /// Begin a read-only transaction: every query in it sees one snapshot
    /// of the store, whatever commits meanwhile (a KPI computation reads
    /// many tables). SQLite in WAL mode keeps the snapshot of the first
    /// read until the end; PostgreSQL needs REPEATABLE READ for that.
    pub fn snapshot(&mut self) -> Result<Tx<'_>, DbError> {
        self.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    }

    /// Begin a transaction: SQLite's deferred `BEGIN`, or `pg` on
    /// PostgreSQL.
    fn begin(&mut self, pg: &str) -> Result<Tx<'_>, DbError> {
        match self {
            Conn::Lite(_) => self.execute_batch("BEGIN")?,
            Conn::Pg(_) => self.execute_batch(pg)?,
        }
        Ok(Tx {
            conn: self,
            done: false,
        })
    }

    /// Run a multi-row statement of `rows` rows ([`values_list`]): the
    /// full batches of [`ROWS_PER_INSERT`] share a cached statement, a
    /// shorter last batch is prepared for once.
    pub fn execute_rows(&self, sql: &str, rows: usize, p: &[&dyn Param]) -> Result<(), DbError> {
        if rows == ROWS_PER_INSERT {
            self.prepare_cached(sql)?.execute(p)?;
        } else {
            self.prepare(sql)?.execute(p)?;
        }
        Ok(())
    }
}

/// A transaction: derefs to its connection.
pub struct Tx<'c> {
    conn: &'c Conn,
    done: bool,
}

impl Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<(), DbError> {
        self.done = true;
        self.conn.execute_batch("COMMIT")
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::debug!(error = %e, "rollback failed (the connection is gone)");
            }
        }
    }
}

enum StmtInner<'c> {
    Lite(rusqlite::Statement<'c>),
    LiteCached(rusqlite::CachedStatement<'c>),
    Pg(&'c pg::PgConn, postgres::Statement),
}

/// A prepared statement.
pub struct Stmt<'c>(StmtInner<'c>);

fn lite_params<'a>(p: &'a [&'a dyn Param]) -> Vec<&'a dyn rusqlite::ToSql> {
    p.iter().map(|p| p.lite()).collect()
}

/// A statement's engine side, for one execution.
enum Engine<'s, 'c> {
    Lite(&'s mut rusqlite::Statement<'c>),
    Pg(&'c pg::PgConn, &'s postgres::Statement),
}

impl<'c> Stmt<'c> {
    fn engine(&mut self) -> Engine<'_, 'c> {
        match &mut self.0 {
            StmtInner::Lite(s) => Engine::Lite(s),
            StmtInner::LiteCached(s) => Engine::Lite(s),
            StmtInner::Pg(c, s) => Engine::Pg(c, s),
        }
    }

    pub fn column_count(&self) -> usize {
        match &self.0 {
            StmtInner::Lite(s) => s.column_count(),
            StmtInner::LiteCached(s) => s.column_count(),
            StmtInner::Pg(_, s) => s.columns().len(),
        }
    }

    pub fn execute<P: Params>(&mut self, p: P) -> Result<usize, DbError> {
        let list = p.list();
        match self.engine() {
            Engine::Lite(s) => Ok(s.execute(&lite_params(&list)[..])?),
            Engine::Pg(c, s) => c.execute(s, &list),
        }
    }

    pub fn query<P: Params>(&mut self, p: P) -> Result<Rows<'_>, DbError> {
        let list = p.list();
        Ok(Rows(match self.engine() {
            Engine::Lite(s) => RowsInner::Lite(s.query(&lite_params(&list)[..])?),
            Engine::Pg(c, s) => RowsInner::Pg(c.query(s, &list)?.into_iter(), None),
        }))
    }

    pub fn query_row<T, P: Params, F>(&mut self, p: P, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&Row<'_>) -> Result<T, DbError>,
    {
        let mut rows = self.query(p)?;
        match rows.next()? {
            Some(r) => f(&r),
            None => Err(DbError::NoRows),
        }
    }

    pub fn exists<P: Params>(&mut self, p: P) -> Result<bool, DbError> {
        Ok(self.query(p)?.next()?.is_some())
    }

    /// Each row mapped by `f`, as rusqlite's `query_map`.
    pub fn query_map<T, P: Params, F>(&mut self, p: P, f: F) -> Result<MappedRows<'_, F>, DbError>
    where
        F: FnMut(&Row<'_>) -> Result<T, DbError>,
    {
        Ok(MappedRows {
            rows: self.query(p)?,
            f,
        })
    }
}

enum RowsInner<'s> {
    Lite(rusqlite::Rows<'s>),
    Pg(std::vec::IntoIter<postgres::Row>, Option<postgres::Row>),
}

/// The rows of a query, read one at a time.
pub struct Rows<'s>(RowsInner<'s>);

impl Rows<'_> {
    #[allow(clippy::should_implement_trait)] // lends each row, as rusqlite's
    pub fn next(&mut self) -> Result<Option<Row<'_>>, DbError> {
        match &mut self.0 {
            RowsInner::Lite(rows) => Ok(rows.next()?.map(Row::Lite)),
            RowsInner::Pg(it, cur) => {
                *cur = it.next();
                Ok(cur.as_ref().map(Row::Pg))
            }
        }
    }
}

/// The iterator of [`Stmt::query_map`].
pub struct MappedRows<'s, F> {
    rows: Rows<'s>,
    f: F,
}

impl<T, F: FnMut(&Row<'_>) -> Result<T, DbError>> Iterator for MappedRows<'_, F> {
    type Item = Result<T, DbError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.rows.next() {
            Ok(Some(r)) => Some((self.f)(&r)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) if *ty == Type::FLOAT8 => (*i as f64).to_sql(ty, out),
            Value::Integer(i) => i.to_sql(ty, out),
            Value::Real(x) => x.to_sql(ty, out),
            Value::Text(t) => t.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}
