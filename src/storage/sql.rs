//! Statements as text with `?` placeholders and the values bound to them (never spliced into
//! the text), and how they run on either backend: Postgres numbers its placeholders, array
//! parameters exist only there.

use diesel::backend::Backend as DieselBackend;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, Double, HasSqlType, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::QueryableByName;

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
#[derive(Clone, Debug, Default)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
        }
    }

    /// A statement: text with one `?` per value, and the values in order.
    pub fn with<const N: usize>(text: &str, values: [Bind; N]) -> Sql {
        Sql {
            text: text.to_string(),
            binds: values.into(),
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
        self
    }

    /// Appends `?, ?, ?` for each value.
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Bind>) -> &mut Sql {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
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
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text for Postgres: `?` becomes `$1`, `$2`, ... (our SQL never has `?` in literals).
    pub(super) fn numbered(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        let mut n = 0;
        for ch in self.text.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        out
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

/// Binds every value with its SQL type; generic so both backends share it. Array values go
/// through `arrays`, which only Postgres implements.
fn bind_all<DB>(
    mut q: BoxedSqlQuery<'static, DB, SqlQuery>,
    binds: &[Bind],
    arrays: impl Fn(
        BoxedSqlQuery<'static, DB, SqlQuery>,
        PgArray,
    ) -> BoxedSqlQuery<'static, DB, SqlQuery>,
) -> BoxedSqlQuery<'static, DB, SqlQuery>
where
    DB: DieselBackend
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
    for b in binds {
        q = match b.clone() {
            Bind::Text(v) => q.bind::<Text, _>(v),
            Bind::OptText(v) => q.bind::<Nullable<Text>, _>(v),
            Bind::Int(v) => q.bind::<BigInt, _>(v),
            Bind::OptInt(v) => q.bind::<Nullable<BigInt>, _>(v),
            Bind::Float(v) => q.bind::<Double, _>(v),
            Bind::OptFloat(v) => q.bind::<Nullable<Double>, _>(v),
            Bind::Bool(v) => q.bind::<Bool, _>(v),
            Bind::OptBool(v) => q.bind::<Nullable<Bool>, _>(v),
            Bind::I32(v) => q.bind::<Integer, _>(v),
            Bind::PgArray(a) => arrays(q, a),
        };
    }
    q
}

pub(super) fn sqlite_query(sql: &Sql) -> BoxedSqlQuery<'static, Sqlite, SqlQuery> {
    // Arrays are never built for SQLite; one would leave a placeholder unbound, which SQLite
    // reports as an error (never a panic).
    bind_all(
        diesel::sql_query(sql.text.clone()).into_boxed::<Sqlite>(),
        &sql.binds,
        |q, _| q,
    )
}

pub(super) fn pg_query(sql: &Sql) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    use diesel::sql_types::Array;
    bind_all(
        diesel::sql_query(sql.numbered()).into_boxed::<Pg>(),
        &sql.binds,
        |q, a| match a {
            PgArray::Int(v) => q.bind::<Array<BigInt>, _>(v),
            PgArray::I32(v) => q.bind::<Array<Integer>, _>(v),
            PgArray::OptText(v) => q.bind::<Array<Nullable<Text>>, _>(v),
            PgArray::OptFloat(v) => q.bind::<Array<Nullable<Double>>, _>(v),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        let mut q = Sql::new("SELECT 1 WHERE a = ");
        q.bind(Bind::Int(1)).push(" AND b IN (");
        q.bind_list([Bind::Int(2), Bind::Int(3)]).push(")");
        assert_eq!(q.numbered(), "SELECT 1 WHERE a = $1 AND b IN ($2, $3)");
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
    fn rows_of_binds() {
        let mut q = Sql::new("INSERT INTO t (a, b) VALUES ");
        q.bind_rows(&[1, 2], |n| vec![Bind::Int(*n), Bind::Int(n * 10)]);
        assert_eq!(q.text(), "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
        assert_eq!(q.binds.len(), 4);
    }
}
