//! Statements as text with `?` placeholders and the values bound to them (never spliced into
//! the text), and how they run on either backend: Postgres numbers its placeholders, array
//! parameters exist only there.

use diesel::backend::Backend as DieselBackend;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{
    Array, BigInt, Bool, Double, HasSqlType, Integer, Nullable, Text, Untyped,
};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, QueryableByName, RunQueryDsl};

use super::TenantId;

/// A bound parameter. Values are never spliced into SQL text.
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Float(f64),
    OptFloat(Option<f64>),
    Bool(bool),
    OptBool(Option<bool>),
    I32(i32),
    /// An array parameter: Postgres only (`unnest` bulk inserts in the Postgres dialect).
    PgArray(PgArray),
}

impl Bind {
    pub fn text(s: &str) -> Bind {
        Bind::Text(s.to_string())
    }

    pub fn tenant(t: &TenantId) -> Bind {
        Bind::Text(t.as_str().to_string())
    }
}

/// Array parameters for Postgres.
#[derive(Clone, Debug, PartialEq)]
pub enum PgArray {
    Int(Vec<i64>),
    I32(Vec<i32>),
    OptText(Vec<Option<String>>),
    OptFloat(Vec<Option<f64>>),
}

/// SQL text with `?` placeholders and the values bound to them, in order.
#[derive(Clone, Debug)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
    /// Whether its text is one of few that recur, so that a connection may keep it prepared
    /// (see `Db::run`): false once a list of values of any length is spliced in.
    reusable: bool,
    /// Whether its text is shaped by a client's input (a filter): such texts may take only
    /// `MAX_SHAPED` of a connection's prepared statements (see `Prepared`).
    shaped: bool,
}

impl Default for Sql {
    fn default() -> Sql {
        Sql::new("")
    }
}

/// Rows or values a list may hold for its statement to stay `reusable`: a statement's texts
/// then differ only in up to this many list lengths.
pub(super) const REUSABLE_LIST: usize = 32;

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
            reusable: true,
            shaped: false,
        }
    }

    /// A statement: text with one `?` per value, and the values in order.
    pub fn with<const N: usize>(text: &str, values: [Bind; N]) -> Sql {
        Sql {
            text: text.to_string(),
            binds: values.into(),
            reusable: true,
            shaped: false,
        }
    }

    /// Appends text with one `?` per value, and the values.
    pub fn and<const N: usize>(&mut self, text: &str, values: [Bind; N]) -> &mut Sql {
        self.text.push_str(text);
        self.binds.extend(values);
        self
    }

    /// Appends SQL text (never a value).
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a `?` placeholder bound to `value`.
    pub fn bind(&mut self, value: Bind) -> &mut Sql {
        self.text.push('?');
        self.binds.push(value);
        self
    }

    /// Appends another fragment, text and binds.
    pub fn append(&mut self, other: Sql) -> &mut Sql {
        self.text.push_str(&other.text);
        self.binds.extend(other.binds);
        self.reusable &= other.reusable;
        self.shaped |= other.shaped;
        self
    }

    /// Appends `?, ?, ?` for each value.
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Bind>) -> &mut Sql {
        let mut n = 0;
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
            n += 1;
        }
        self.reusable &= n <= REUSABLE_LIST;
        self
    }

    /// Appends `(?, ?), (?, ?), ...`: one parenthesised row of binds per item (multi-row
    /// INSERT ... VALUES).
    pub fn bind_rows<T>(&mut self, items: &[T], row: impl Fn(&T) -> Vec<Bind>) -> &mut Sql {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.text.push('(');
            self.bind_list(row(item));
            self.text.push(')');
        }
        self.reusable &= items.len() <= REUSABLE_LIST;
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Marks the statement as one a connection must not keep prepared: its text is shaped by
    /// a client (a filter), so one tenant's many filter shapes would otherwise take every
    /// slot of each connection's statement cache from the statements all tenants repeat.
    pub fn not_reusable(&mut self) -> &mut Sql {
        self.reusable = false;
        self
    }

    /// Marks the statement's text as shaped by a client's input (a filter's structure): a
    /// connection keeps few such texts prepared, so one tenant's many shapes cannot take the
    /// slots of the statements every request runs.
    pub fn shaped_by_client(&mut self) -> &mut Sql {
        self.shaped = true;
        self
    }

    /// Whether a connection may keep this statement prepared (see `reusable`).
    pub(super) fn reusable(&self) -> bool {
        self.reusable
    }
}

/// Keys per `IN (...)` list when reading or changing many rows by key: far below the bound
/// parameter limits of SQLite (32,766) and Postgres (65,535).
pub(crate) const ID_BATCH: usize = 500;

/// A `WHERE tenant_id = ?` style start: `text` followed by the tenant's bind.
pub fn scoped(text: &str, tenant: &TenantId) -> Sql {
    let mut q = Sql::new(text);
    q.bind(Bind::tenant(tenant));
    q
}

/// `SELECT columns FROM from WHERE tenant = ?`: the start of a tenant's rows.
pub fn select(columns: &str, from: &str, tenant: &TenantId) -> Sql {
    Sql::with(
        &format!(
            "SELECT {columns} FROM {from} WHERE {}tenant_id = ?",
            alias(from)
        ),
        [Bind::tenant(tenant)],
    )
}

/// `a.` for `accounts a`, nothing for a bare table.
fn alias(from: &str) -> String {
    match from.split_whitespace().nth(1) {
        Some(a) => format!("{a}."),
        None => String::new(),
    }
}

/// The one-column answer of a `SELECT COUNT(*) AS n`.
#[derive(QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// A statement as diesel runs it: its text and its values, bound by reference (diesel writes
/// each placeholder: `?` on SQLite, `$1`, `$2`, ... on Postgres). diesel keeps a statement
/// prepared on its connection, keyed by its text, when `cache` is set (`Db::run` decides);
/// otherwise it is prepared for this one use, as `diesel::sql_query` always is.
pub(super) struct Stmt<'a> {
    sql: &'a Sql,
    cache: bool,
}

impl<'a> Stmt<'a> {
    pub(super) fn new(sql: &'a Sql, cache: bool) -> Stmt<'a> {
        Stmt { sql, cache }
    }
}

impl QueryId for Stmt<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Stmt<'_> {
    type SqlType = Untyped;
}

impl<C> RunQueryDsl<C> for Stmt<'_> {}

/// How a backend binds array values: only Postgres has them.
pub(super) trait BindArrays: DieselBackend + Sized {
    fn push_array<'b>(out: &mut AstPass<'_, 'b, Self>, a: &'b PgArray) -> QueryResult<()>;
}

impl BindArrays for Sqlite {
    fn push_array<'b>(out: &mut AstPass<'_, 'b, Self>, _: &'b PgArray) -> QueryResult<()> {
        // Arrays are never built for SQLite; one would leave its placeholder unbound (never a
        // panic).
        out.push_sql("?");
        Ok(())
    }
}

impl BindArrays for Pg {
    fn push_array<'b>(out: &mut AstPass<'_, 'b, Self>, a: &'b PgArray) -> QueryResult<()> {
        match a {
            PgArray::Int(v) => out.push_bind_param::<Array<BigInt>, _>(v),
            PgArray::I32(v) => out.push_bind_param::<Array<Integer>, _>(v),
            PgArray::OptText(v) => out.push_bind_param::<Array<Nullable<Text>>, _>(v),
            PgArray::OptFloat(v) => out.push_bind_param::<Array<Nullable<Double>>, _>(v),
        }
    }
}

/// Binds every value with its SQL type; generic so both backends share it.
impl<DB> QueryFragment<DB> for Stmt<'_>
where
    DB: BindArrays
        + HasSqlType<Text>
        + HasSqlType<BigInt>
        + HasSqlType<Double>
        + HasSqlType<Bool>
        + HasSqlType<Integer>,
    String: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    f64: ToSql<Double, DB>,
    bool: ToSql<Bool, DB>,
    i32: ToSql<Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if !self.cache {
            out.unsafe_to_cache_prepared();
        }
        // Our SQL never has `?` in literals: each `?` is the place of the next value.
        let mut pieces = Pieces(Some(&self.sql.text));
        out.push_sql(pieces.next().unwrap_or_default());
        for b in &self.sql.binds {
            match b {
                Bind::Text(v) => out.push_bind_param::<Text, _>(v)?,
                Bind::OptText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Bind::Int(v) => out.push_bind_param::<BigInt, _>(v)?,
                Bind::OptInt(v) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                Bind::Float(v) => out.push_bind_param::<Double, _>(v)?,
                Bind::OptFloat(v) => out.push_bind_param::<Nullable<Double>, _>(v)?,
                Bind::Bool(v) => out.push_bind_param::<Bool, _>(v)?,
                Bind::OptBool(v) => out.push_bind_param::<Nullable<Bool>, _>(v)?,
                Bind::I32(v) => out.push_bind_param::<Integer, _>(v)?,
                Bind::PgArray(a) => DB::push_array(&mut out, a)?,
            }
            out.push_sql(pieces.next().unwrap_or_default());
        }
        // More places than values: left unbound, as the database reports them.
        for piece in pieces {
            out.push_sql("?");
            out.push_sql(piece);
        }
        Ok(())
    }
}

/// The text between placeholders: `split('?')`, by bytes (a statement is walked three times
/// per run, and `str::split`'s char searcher cost half of that).
struct Pieces<'a>(Option<&'a str>);

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0.take()?;
        // `?` is ASCII: its index and the next one are char boundaries.
        match rest.bytes().position(|b| b == b'?') {
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => Some(rest),
        }
    }
}

/// The texts (by hash) of the statements a connection keeps prepared, and how many of them
/// are shaped by a client (`Sql::shaped_by_client`): diesel keeps every statement it is told
/// to cache for the connection's life, so only `Sql::reusable` ones are, at most
/// `MAX_PREPARED` of them, of which at most `MAX_SHAPED` shaped ones (the first met; later
/// texts are prepared per use). The statements of the front door and the write path, a few
/// dozen, always find room.
#[derive(Default)]
pub(super) struct Prepared(std::cell::RefCell<(std::collections::HashSet<u64>, usize)>);

/// Statements a connection keeps prepared at most.
pub(super) const MAX_PREPARED: usize = 256;

/// Of those, statements whose text a client's filter shaped: the common lookups (`userName
/// eq`, `externalId eq`, a value path) are a handful of shapes.
pub(super) const MAX_SHAPED: usize = 64;

impl Prepared {
    pub(super) fn keep(&self, sql: &Sql) -> bool {
        use std::hash::{BuildHasher, BuildHasherDefault};
        if !sql.reusable() {
            return false;
        }
        let key = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(sql.text());
        let mut kept = self.0.borrow_mut();
        let (texts, shaped) = &mut *kept;
        if texts.contains(&key) {
            return true;
        }
        if texts.len() >= MAX_PREPARED || (sql.shaped && *shaped >= MAX_SHAPED) {
            return false;
        }
        texts.insert(key);
        *shaped += usize::from(sql.shaped);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaped_texts_take_at_most_max_shaped_slots() {
        let kept = Prepared::default();
        let shaped = |i: usize| {
            let mut q = Sql::new("SELECT 1 WHERE ");
            let mut f = Sql::new(&format!("a = {i}"));
            f.shaped_by_client();
            q.append(f);
            q
        };
        for i in 0..MAX_SHAPED {
            assert!(kept.keep(&shaped(i)), "shaped text {i} is kept");
        }
        assert!(kept.keep(&shaped(0)), "a kept shaped text stays kept");
        assert!(!kept.keep(&shaped(MAX_SHAPED)), "past the share: per use");
        for i in 0..MAX_PREPARED - MAX_SHAPED {
            assert!(
                kept.keep(&Sql::new(&format!("SELECT {i}"))),
                "plain text {i}"
            );
        }
        assert!(
            !kept.keep(&Sql::new("SELECT 'one more'")),
            "the whole cache is full"
        );
    }

    #[test]
    fn a_connection_keeps_at_most_max_prepared_texts_and_no_unreusable_one() {
        let kept = Prepared::default();
        let nth = |i: usize| Sql::new(&format!("SELECT {i}"));
        for i in 0..MAX_PREPARED {
            assert!(kept.keep(&nth(i)), "text {i} is kept");
        }
        assert!(kept.keep(&nth(0)), "a kept text stays kept");
        assert!(
            !kept.keep(&nth(MAX_PREPARED)),
            "one more is prepared per use"
        );
        let mut long = Sql::new("SELECT 1 WHERE a IN (");
        long.bind_list((0..100).map(Bind::Int)).push(")");
        assert!(
            !Prepared::default().keep(&long),
            "a long list is never kept"
        );
    }

    #[test]
    fn postgres_placeholders_are_numbered() {
        let mut q = Sql::new("SELECT 1 WHERE a = ");
        q.bind(Bind::Int(1)).push(" AND b IN (");
        q.bind_list([Bind::Int(2), Bind::Int(3)]).push(")");
        let pg = diesel::debug_query::<Pg, _>(&Stmt::new(&q, true)).to_string();
        assert!(
            pg.starts_with("SELECT 1 WHERE a = $1 AND b IN ($2, $3) -- binds: [1, 2, 3]"),
            "{pg}"
        );
        let sqlite = diesel::debug_query::<Sqlite, _>(&Stmt::new(&q, true)).to_string();
        assert!(
            sqlite.starts_with("SELECT 1 WHERE a = ? AND b IN (?, ?) -- binds: [1, 2, 3]"),
            "{sqlite}"
        );
        assert_eq!(q.text(), "SELECT 1 WHERE a = ? AND b IN (?, ?)");
    }

    #[test]
    fn statements_with_their_values() {
        let t = TenantId::from("t");
        let mut q = select("a.id", "accounts a", &t);
        q.and(" AND a.id > ? LIMIT ?", [Bind::text("x"), Bind::Int(5)]);
        assert_eq!(
            q.text(),
            "SELECT a.id FROM accounts a WHERE a.tenant_id = ? AND a.id > ? LIMIT ?"
        );
        assert_eq!(q.binds.len(), 3);
        assert_eq!(
            select("id", "roles", &t).text(),
            "SELECT id FROM roles WHERE tenant_id = ?"
        );
    }

    #[test]
    fn pieces_are_the_text_between_placeholders() {
        for text in ["", "?", "a", "a?", "?a", "a ? b ?? c", "é?ü?"] {
            let ours: Vec<&str> = Pieces(Some(text)).collect();
            let std: Vec<&str> = text.split('?').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn rows_of_binds() {
        let mut q = Sql::new("INSERT INTO t (a, b) VALUES ");
        q.bind_rows(&[1, 2], |n| vec![Bind::Int(*n), Bind::Int(n * 10)]);
        assert_eq!(q.text(), "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
        assert_eq!(q.binds.len(), 4);
    }

    #[test]
    fn only_statements_with_short_lists_are_reusable() {
        let short: Vec<i64> = (0..REUSABLE_LIST as i64).collect();
        let long: Vec<i64> = (0..=REUSABLE_LIST as i64).collect();
        let mut q = Sql::with("SELECT 1 WHERE a = ?", [Bind::Int(1)]);
        assert!(q.reusable());
        q.push(" AND b IN (")
            .bind_list(short.iter().map(|n| Bind::Int(*n)));
        assert!(q.reusable(), "a list of {} keeps it", short.len());
        let mut q = Sql::new("SELECT 1 WHERE b IN (");
        q.bind_list(long.iter().map(|n| Bind::Int(*n)));
        assert!(!q.reusable(), "a list of {} does not", long.len());
        let mut rows = Sql::new("INSERT INTO t (a) VALUES ");
        rows.bind_rows(&long, |n| vec![Bind::Int(*n)]);
        assert!(!rows.reusable(), "nor {} rows", long.len());
        let mut joined = Sql::new("SELECT 1 WHERE ");
        joined.append(rows);
        assert!(
            !joined.reusable(),
            "nor a statement that takes such a fragment in"
        );
        let mut filter = Sql::new("r.pk = 1");
        filter.not_reusable();
        let mut q = Sql::new("SELECT 1 WHERE ");
        q.append(filter);
        assert!(!q.reusable(), "nor one with a client's filter in it");
    }
}
