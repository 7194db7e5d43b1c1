//! Validated filters (`scim::filter::Cond`) to SQL, for both backends, with bound parameters
//! only. Attributes with a column of their own (`columns`) are compared directly; the others
//! through `pk IN (SELECT res_pk FROM attr_values ...)`, driven from the index on
//! (tenant_id, path, val|num); value paths correlate sub-attributes of one element.
//!
//! Plans do not depend on fresh statistics. A selective conjunct of the top level (an
//! equality, prefix or substring on `attr_values`, a value path, a membership) is the
//! driving side of the query: its matching keys are read once and the resources fetched by
//! pk (`Backend::keys_in`: on Postgres `r.pk = ANY(ARRAY(...))`, an InitPlan run once, then a
//! lookup of the primary key), and the tenant and type are then checked on those rows only
//! (`Backend::resource_scope`). Without statistics (a database right after a big import, or
//! one with autovacuum off), Postgres estimates a tenant's resources at a row or two and
//! otherwise picks a nested loop of every resource against every match of the subquery:
//! 8.3 s instead of 32 ms for `emails.value co "12"` at 20,000 users, minutes at 10,000 users
//! with more values. Under `OR` and `NOT` the subqueries stay `IN (...)`: Postgres answers
//! those with a hashed subplan, linear whatever it estimates.
//!
//! Every fragment is a never-NULL boolean, so `NOT` behaves as in the in-memory evaluator:
//! an absent attribute matches `ne` and `not (...)` (RFC 7644 §3.4.2.2).

use super::columns::column_of;
use super::grams::{pg_fragments, trigram_operand, trigram_query, GramCounts};
use crate::scim::filter::CompOp;
use crate::scim::filter::{Cond, ElemSet, Field, Kind, Operand, RefField, Target};
use crate::scim::schema::Rtype;
use crate::storage::dialect::Backend;
use crate::storage::sql::{Bind, Sql};
use crate::storage::TenantId;

/// The columns of `members` that hold this side and the other side of a reference: a Group's
/// references are its members, a User's its groups.
pub(crate) fn sides(rt: Rtype) -> (&'static str, &'static str) {
    match rt {
        Rtype::Group => ("group_pk", "member_pk"),
        Rtype::User => ("member_pk", "group_pk"),
    }
}

/// Where a condition is evaluated.
#[derive(Clone, Copy)]
enum Ctx<'a> {
    /// The resource row, alias `r`.
    Resource,
    /// One element of a multi-valued attribute: the marker row alias.
    Element(&'a str),
    /// A membership reference: the `members` row alias and the referenced resource row alias
    /// (the member, on Groups; the group, on Users).
    Ref(&'a str, &'a str),
}

pub struct Translator<'a> {
    tenant: &'a TenantId,
    rt: Rtype,
    backend: Backend,
    aliases: usize,
    grams: Option<&'a GramCounts>,
    /// The condition being translated is a selective conjunct of the top level: its key
    /// subquery may drive the query (see the module comment).
    top: bool,
    /// Some conjunct of the top level drives the query from its keys.
    drove: bool,
    /// The driving key subquery of a condition that is that one test, on an attribute only
    /// this resource type defines (`Target::exclusive`): its distinct keys are exactly the
    /// matches, without reading `resources` (`keys`).
    keys: Option<Sql>,
}

impl<'a> Translator<'a> {
    pub fn new(tenant: &'a TenantId, rt: Rtype, backend: Backend) -> Translator<'a> {
        Translator {
            tenant,
            rt,
            backend,
            aliases: 0,
            grams: None,
            top: false,
            drove: false,
            keys: None,
        }
    }

    /// Searches substrings by their rarest trigrams, as counted in `grams`.
    pub fn with_gram_counts(mut self, grams: &'a GramCounts) -> Translator<'a> {
        self.grams = Some(grams);
        self
    }

    /// Appends `cond` as a boolean SQL expression over `resources r`.
    pub fn translate(&mut self, cond: &Cond, out: &mut Sql) {
        self.keys = None;
        self.conjunct(cond, out);
        if matches!(cond, Cond::And(..)) {
            // A conjunct's keys select more than the conjunction's matches.
            self.keys = None;
        }
    }

    /// The key subquery (one column, `res_pk`, possibly repeated) whose distinct keys are
    /// exactly the resources the translated condition selects, when there is one: the
    /// condition is a single selective test on `attr_values` of an attribute no other
    /// resource type defines (so its rows' `tenant_id` test is the resources' tenant and type
    /// test). A count or a page of keys then needs no row of `resources`. Taken: a second
    /// call returns None.
    pub fn take_keys(&mut self) -> Option<Sql> {
        self.keys.take()
    }

    /// Whether the translated condition drives the query from the keys of one of its
    /// conjuncts: then the tenant and type of `resources r` are tested on the fetched rows
    /// (`Backend::resource_scope`).
    pub fn drove(&self) -> bool {
        self.drove
    }

    /// A conjunct of the top level: a selective one may drive the query.
    fn conjunct(&mut self, cond: &Cond, out: &mut Sql) {
        if let Cond::And(a, b) = cond {
            out.push("(");
            self.conjunct(a, out);
            out.push(" AND ");
            self.conjunct(b, out);
            out.push(")");
            return;
        }
        self.top = is_selective(cond);
        self.cond(cond, Ctx::Resource, out);
        self.top = false;
    }

    /// Opens the test that `r.pk` is among the keys of the subquery that follows, and
    /// returns its closing text and whether it drives: the driving form in a selective
    /// conjunct of the top level.
    fn open_keys(&mut self, out: &mut Sql) -> (&'static str, bool) {
        let drives = std::mem::take(&mut self.top);
        self.drove |= drives;
        let (open, close) = self.backend.keys_in(drives);
        out.push(open);
        (close, drives)
    }

    /// Appends the key subquery `keys` that `open_keys` opened, and its closing text. When it
    /// drives (a conjunct of the top level) on an attribute only this resource type defines,
    /// it is also kept as the condition's `keys` (dropped by `translate` unless the
    /// condition is this one test).
    fn close_keys(
        &mut self,
        keys: Sql,
        (close, drives): (&str, bool),
        exclusive: bool,
        out: &mut Sql,
    ) {
        if drives && exclusive {
            self.keys = Some(keys.clone());
        }
        out.append(keys);
        out.push(close);
    }

    /// Appends an element-relative condition (`members[...]`'s inside) evaluated on the
    /// referenced resource row `alias`.
    pub fn translate_ref_row(
        &mut self,
        inner: &Cond,
        members_alias: &str,
        alias: &str,
        out: &mut Sql,
    ) {
        self.cond(inner, Ctx::Ref(members_alias, alias), out);
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    fn cond(&mut self, cond: &Cond, ctx: Ctx<'_>, out: &mut Sql) {
        if matches!(cond, Cond::Not(_) | Cond::And(..) | Cond::Or(..))
            || matches!(cond, Cond::Cmp(_, CompOp::Ne, _))
        {
            // Under NOT or OR a key subquery is tested per row (a hashed subplan), never drives.
            self.top = false;
        }
        match cond {
            Cond::Not(c) => {
                out.push("(NOT ");
                self.cond(c, ctx, out);
                out.push(")");
            }
            Cond::And(a, b) | Cond::Or(a, b) => {
                out.push("(");
                self.cond(a, ctx, out);
                out.push(if matches!(cond, Cond::And(..)) {
                    " AND "
                } else {
                    " OR "
                });
                self.cond(b, ctx, out);
                out.push(")");
            }
            Cond::Elem { set, inner, .. } => self.elem(set, inner, out),
            Cond::Const(b) => {
                out.push(if *b { "1 = 1" } else { "1 = 0" });
            }
            Cond::Extension(urn) => match ctx {
                Ctx::Resource => self.extension(urn, out),
                // Never inside a value path or a membership reference (`resolve` builds it
                // only at the top level).
                Ctx::Element(_) | Ctx::Ref(..) => {
                    out.push("1 = 0");
                }
            },
            Cond::Present(t) | Cond::Cmp(t, _, _) => {
                if let (Field::Ref(_), Ctx::Resource) = (&t.field, ctx) {
                    // `members.value eq "x"` = `members[value eq "x"]`; `ne` is "no member
                    // equals", as for every multi-valued attribute.
                    if let Cond::Cmp(t, CompOp::Ne, operand) = cond {
                        let eq = Cond::Cmp(t.clone(), CompOp::Eq, operand.clone());
                        out.push("(NOT ");
                        self.elem(&ElemSet::Refs, &eq, out);
                        out.push(")");
                    } else {
                        self.elem(&ElemSet::Refs, cond, out);
                    }
                    return;
                }
                match cond {
                    Cond::Cmp(t, CompOp::Ne, operand) => {
                        // ne is "not equal": true when no value equals (absent included).
                        out.push("(NOT ");
                        self.leaf(t, Some((CompOp::Eq, operand)), ctx, out);
                        out.push(")");
                    }
                    Cond::Cmp(t, op, operand) => self.leaf(t, Some((*op, operand)), ctx, out),
                    _ => self.leaf(t, None, ctx, out),
                }
            }
        }
    }

    /// The resource carries attributes of extension `urn`. Its `schemas` is derived, not
    /// stored: every attribute of an extension that the document holds has at least one
    /// `attr_values` row under the path `urn:attr` (lower-cased; a complex attribute has a
    /// marker row, see `storage::index`), so the test probes the resource's rows through the
    /// (res_pk, path, elem) index, as a byte range or a LIKE prefix
    /// (`Backend::path_prefix_as_range`).
    fn extension(&mut self, urn: &str, out: &mut Sql) {
        let v = self.alias("x");
        let prefix = format!("{}:", urn.to_lowercase());
        out.push(&format!(
            "EXISTS (SELECT 1 FROM attr_values {v} WHERE {v}.res_pk = r.pk AND "
        ));
        if self.backend.path_prefix_as_range() {
            push_cmp(&format!("{v}.path"), CompOp::Sw, &Operand::Str(prefix), out);
        } else {
            out.push(&format!("{v}.path LIKE "));
            out.bind(Bind::Text(like_pattern(CompOp::Sw, &prefix)));
            out.push(" ESCAPE '\\'");
        }
        out.push(")");
    }

    fn elem(&mut self, set: &ElemSet, inner: &Cond, out: &mut Sql) {
        match set {
            ElemSet::Values(path) => {
                let e = self.alias("e");
                let opened = self.open_keys(out);
                let mut keys = Sql::new(&format!(
                    "SELECT {e}.res_pk FROM attr_values {e} WHERE {e}.tenant_id = "
                ));
                keys.bind(Bind::tenant(self.tenant));
                let exclusive = match split_driver(inner) {
                    // Drive from the rows of one positive comparison (an index range, e.g.
                    // emails.value = ?), then check the rest on the same element: the driver
                    // row's (res_pk, elem) is the element's.
                    Some((
                        Driver {
                            path: leaf_path,
                            kind,
                            op,
                            operand,
                            exclusive,
                        },
                        rest,
                    )) => {
                        keys.push(&format!(" AND {e}.path = "));
                        keys.bind(Bind::Text(leaf_path));
                        value_test(
                            &e,
                            kind,
                            Some((op, &operand)),
                            self.backend,
                            self.grams,
                            true,
                            &mut keys,
                        );
                        if let Some(rest) = rest {
                            keys.push(" AND ");
                            self.cond(&rest, Ctx::Element(&e), &mut keys);
                        }
                        exclusive
                    }
                    // Otherwise walk the elements (marker rows) and test each.
                    _ => {
                        keys.push(&format!(" AND {e}.path = "));
                        keys.bind(Bind::Text(path.clone()));
                        keys.push(" AND ");
                        self.cond(inner, Ctx::Element(&e), &mut keys);
                        false
                    }
                };
                self.close_keys(keys, opened, exclusive, out);
            }
            ElemSet::Refs => {
                let (m, u) = (self.alias("m"), self.alias("u"));
                // On a Group the references are its members; on a User, its groups.
                let (this, other) = sides(self.rt);
                let (close, _) = self.open_keys(out);
                // The referenced resource's tenant lets `members[value eq "id"]` start from
                // the (tenant_id, id) index rather than from every membership.
                out.push(&format!(
                    "SELECT {m}.{this} FROM members {m} JOIN resources {u} ON {u}.pk = {m}.{other} AND {u}.tenant_id = "
                ));
                out.bind(Bind::tenant(self.tenant));
                out.push(&format!(" WHERE {m}.tenant_id = "));
                out.bind(Bind::tenant(self.tenant));
                out.push(" AND ");
                self.cond(inner, Ctx::Ref(&m, &u), out);
                out.push(close);
            }
        }
    }

    /// A presence test (`cmp` None) or a positive comparison (never `ne`).
    fn leaf(&mut self, t: &Target, cmp: Option<(CompOp, &Operand)>, ctx: Ctx<'_>, out: &mut Sql) {
        match (&t.field, ctx) {
            (Field::Attr(path), Ctx::Resource) => match column_of(self.rt, path) {
                Some(c) => column_test(&format!("r.{}", c.name()), c.is_text(), cmp, out),
                None => self.value_leaf(path, t.kind, cmp, t.exclusive, out),
            },
            (Field::Attr(path), Ctx::Element(e)) => {
                let s = self.alias("s");
                out.push(&format!(
                    "EXISTS (SELECT 1 FROM attr_values {s} WHERE {s}.res_pk = {e}.res_pk AND {s}.elem = {e}.elem AND {s}.path = "
                ));
                out.bind(Bind::text(path));
                value_test(&s, t.kind, cmp, self.backend, self.grams, false, out);
                out.push(")");
            }
            (Field::Ref(f), Ctx::Ref(m, u)) => self.ref_test(*f, t.kind, cmp, m, u, out),
            (Field::Attr(_), Ctx::Ref(..)) | (Field::Ref(_), _) => {
                out.push("1 = 0");
            }
        }
    }

    /// A test on the `attr_values` rows of the resource at `path` (`exclusive`: only this
    /// resource type defines the attribute).
    fn value_leaf(
        &mut self,
        path: &str,
        kind: Kind,
        cmp: Option<(CompOp, &Operand)>,
        exclusive: bool,
        out: &mut Sql,
    ) {
        let v = self.alias("v");
        match trigram_operand(cmp).filter(|_| self.backend.has_trigram_table()) {
            Some(sub) => {
                // Substring search on SQLite: start from the trigram index (CROSS JOIN fixes
                // the join order), then check tenant, path and the exact LIKE on each hit.
                let opened = self.open_keys(out);
                let mut keys = Sql::new(&format!(
                    "SELECT {v}.res_pk FROM attr_values_trgm CROSS JOIN attr_values {v} \
                     ON {v}.id = attr_values_trgm.rowid WHERE attr_values_trgm MATCH "
                ));
                keys.bind(Bind::Text(trigram_query(sub, self.grams)));
                keys.push(&format!(" AND {v}.tenant_id = "));
                keys.bind(Bind::tenant(self.tenant));
                keys.push(&format!(" AND {v}.path = "));
                keys.bind(Bind::text(path));
                if let Some((op, operand)) = cmp {
                    keys.push(" AND ");
                    push_cmp(&format!("{v}.val"), op, operand, &mut keys);
                }
                self.close_keys(keys, opened, exclusive, out);
            }
            None if !selective_leaf(cmp) => {
                // A test most resources pass (`pr`, a boolean, a range) is checked per
                // candidate row through the (res_pk, path) index; materialising its matches
                // (`IN`) would cost a row per resource.
                out.push(&format!(
                    "EXISTS (SELECT 1 FROM attr_values {v} WHERE {v}.res_pk = r.pk AND {v}.path = "
                ));
                out.bind(Bind::text(path));
                value_test(&v, kind, cmp, self.backend, self.grams, false, out);
                out.push(")");
            }
            None => {
                // A selective test (equality, prefix, substring) drives from its index.
                let opened = self.open_keys(out);
                let mut keys = Sql::new(&format!(
                    "SELECT {v}.res_pk FROM attr_values {v} WHERE {v}.tenant_id = "
                ));
                keys.bind(Bind::tenant(self.tenant));
                keys.push(&format!(" AND {v}.path = "));
                keys.bind(Bind::text(path));
                value_test(&v, kind, cmp, self.backend, self.grams, true, &mut keys);
                self.close_keys(keys, opened, exclusive, out);
            }
        }
    }

    fn ref_test(
        &mut self,
        f: RefField,
        kind: Kind,
        cmp: Option<(CompOp, &Operand)>,
        m: &str,
        u: &str,
        out: &mut Sql,
    ) {
        match (f, self.rt) {
            (RefField::Value, _) => column_test(&format!("{u}.id"), true, cmp, out),
            (RefField::Display, Rtype::Group) => {
                // The display the client sent with the membership, else the member's own name.
                column_test(
                    &format!("COALESCE({m}.display_ci, {u}.display_ci, {u}.user_name_ci)"),
                    true,
                    cmp,
                    out,
                )
            }
            (RefField::Display, Rtype::User) => {
                column_test(&format!("{u}.display_ci"), true, cmp, out)
            }
            (RefField::Type, Rtype::Group) => {
                // rtype holds "User"/"Group" (ASCII): LOWER is exact for it on both backends.
                let col = match kind {
                    Kind::Str { case_exact: false } => format!("LOWER({u}.rtype)"),
                    _ => format!("{u}.rtype"),
                };
                column_test(&col, true, cmp, out)
            }
            (RefField::Type, Rtype::User) => {
                // A user's groups are all direct memberships.
                let hit = match cmp {
                    None => true,
                    Some((op, Operand::Str(s))) => crate::scim::filter::cmp_value(
                        kind,
                        op,
                        &serde_json::Value::String("direct".into()),
                        &Operand::Str(s.clone()),
                    ),
                    Some(_) => false,
                };
                out.push(if hit { "1 = 1" } else { "1 = 0" });
            }
        }
    }
}

/// The comparison a value-path query is driven from.
struct Driver {
    path: String,
    kind: Kind,
    op: CompOp,
    operand: Operand,
    /// `Target::exclusive` of the compared attribute.
    exclusive: bool,
}

/// In a value-path filter that is a conjunction, picks a comparison that can drive the query
/// from an index (a positive comparison on a stored sub-attribute, `eq` preferred) and returns
/// it with the rest of the conjunction.
fn split_driver(inner: &Cond) -> Option<(Driver, Option<Cond>)> {
    fn conjuncts<'c>(c: &'c Cond, out: &mut Vec<&'c Cond>) {
        match c {
            Cond::And(a, b) => {
                conjuncts(a, out);
                conjuncts(b, out);
            }
            other => out.push(other),
        }
    }
    let mut parts = Vec::new();
    conjuncts(inner, &mut parts);
    let driver = |c: &Cond| match c {
        Cond::Cmp(t, op, operand @ (Operand::Str(_) | Operand::Num(_))) if *op != CompOp::Ne => {
            match &t.field {
                Field::Attr(path) => Some(Driver {
                    path: path.clone(),
                    kind: t.kind,
                    op: *op,
                    operand: operand.clone(),
                    exclusive: t.exclusive,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    // Without statistics, guess selectivity from the shape: `eq` beats ranges and substrings,
    // and a `value` beats `type`/`primary`, whose few canonical values match most elements.
    let rank = |d: &Driver| {
        let low_cardinality = d.path.ends_with(".type") || d.path.ends_with(".primary");
        (
            low_cardinality,
            d.op != CompOp::Eq,
            !d.path.ends_with(".value"),
        )
    };
    let pick = parts
        .iter()
        .enumerate()
        .filter_map(|(i, c)| driver(c).map(|d| (rank(&d), i)))
        .min()
        .map(|(_, i)| i)?;
    let chosen = driver(parts[pick])?;
    let rest = parts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != pick)
        .map(|(_, c)| (*c).clone())
        .reduce(|a, b| Cond::And(Box::new(a), Box::new(b)));
    Some((chosen, rest))
}

fn op_sql(op: CompOp) -> &'static str {
    match op {
        CompOp::Eq => " = ",
        CompOp::Ne => " <> ",
        CompOp::Gt => " > ",
        CompOp::Ge => " >= ",
        CompOp::Lt => " < ",
        CompOp::Le => " <= ",
        CompOp::Co | CompOp::Sw | CompOp::Ew => " LIKE ",
    }
}

/// `%`, `_` and `\` are literal in SCIM values: escape them for LIKE ... ESCAPE '\'.
fn like_pattern(op: CompOp, s: &str) -> String {
    let mut esc = String::with_capacity(s.len() + 2);
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            esc.push('\\');
        }
        esc.push(ch);
    }
    match op {
        CompOp::Co => format!("%{esc}%"),
        CompOp::Sw => format!("{esc}%"),
        _ => format!("%{esc}"),
    }
}

fn operand_bind(op: CompOp, operand: &Operand) -> Bind {
    match operand {
        Operand::Str(s) if matches!(op, CompOp::Co | CompOp::Sw | CompOp::Ew) => {
            Bind::Text(like_pattern(op, s))
        }
        Operand::Str(s) => Bind::Text(s.clone()),
        Operand::Num(n) => Bind::Float(*n),
        Operand::Bool(b) => Bind::Bool(*b),
    }
}

fn push_cmp(expr: &str, op: CompOp, operand: &Operand, out: &mut Sql) {
    if let (CompOp::Sw, Operand::Str(prefix)) = (op, operand) {
        // A prefix is a range of the b-tree (byte order on both backends): exact, and served
        // by the index whatever the planner thinks of LIKE with a bound pattern.
        out.push(&format!("({expr} >= "));
        out.bind(Bind::Text(prefix.clone()));
        if let Some(upper) = prefix_upper_bound(prefix) {
            out.push(&format!(" AND {expr} < "));
            out.bind(Bind::Text(upper));
        }
        out.push(")");
        return;
    }
    out.push(expr).push(op_sql(op));
    out.bind(operand_bind(op, operand));
    if matches!(op, CompOp::Co | CompOp::Sw | CompOp::Ew) {
        out.push(" ESCAPE '\\'");
    }
}

/// The least string greater than every string starting with `prefix`: the prefix with its
/// last incrementable character incremented (None when every character is U+10FFFF).
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A test on a nullable column, never NULL itself.
fn column_test(col: &str, text: bool, cmp: Option<(CompOp, &Operand)>, out: &mut Sql) {
    out.push(&format!("({col} IS NOT NULL AND "));
    match cmp {
        None if text => {
            out.push(&format!("{col} <> ''"));
        }
        None => {
            out.push("1 = 1");
        }
        Some((op, operand)) => push_cmp(col, op, operand, out),
    }
    out.push(")");
}

/// Whether `c` tests a substring anywhere (`co`, `ew`).
pub(crate) fn has_substring(c: &Cond) -> bool {
    match c {
        Cond::Cmp(_, op, _) => matches!(op, CompOp::Co | CompOp::Ew),
        Cond::Present(_) | Cond::Extension(_) | Cond::Const(_) => false,
        Cond::Not(c) | Cond::Elem { inner: c, .. } => has_substring(c),
        Cond::And(a, b) | Cond::Or(a, b) => has_substring(a) || has_substring(b),
    }
}

/// Does the filter certainly select few rows, through an index (an equality, prefix or
/// substring on a string)? Then reading its matches beats scanning in order.
pub(crate) fn is_selective(cond: &Cond) -> bool {
    match cond {
        // `meta.resourceType` is the type column: it holds every resource of the list.
        Cond::Cmp(t, ..) if matches!(&t.field, Field::Attr(p) if p == "meta.resourcetype") => false,
        Cond::Cmp(_, CompOp::Eq | CompOp::Sw | CompOp::Co | CompOp::Ew, Operand::Str(s)) => {
            !s.is_empty()
        }
        Cond::And(a, b) => is_selective(a) || is_selective(b),
        Cond::Or(a, b) => is_selective(a) && is_selective(b),
        Cond::Elem { inner, .. } => is_selective(inner),
        _ => false,
    }
}

/// Is this comparison likely to select few rows from an index (a string equality, prefix or
/// substring)?
fn selective_leaf(cmp: Option<(CompOp, &Operand)>) -> bool {
    matches!(cmp, Some((CompOp::Eq | CompOp::Sw | CompOp::Co | CompOp::Ew, Operand::Str(s))) if !s.is_empty())
}

/// The condition on one attr_values row `v` (appended after its path test). `drives`: the
/// rows are read from an index to drive the query (a key subquery), not tested per resource.
fn value_test(
    v: &str,
    kind: Kind,
    cmp: Option<(CompOp, &Operand)>,
    backend: Backend,
    grams: Option<&GramCounts>,
    drives: bool,
    out: &mut Sql,
) {
    if let Some(s) = trigram_operand(cmp).filter(|_| backend.has_trigram_table()) {
        // Candidates from the FTS5 trigram index (migration 000004); the LIKE below re-checks
        // each.
        out.push(&format!(
            " AND {v}.id IN (SELECT rowid FROM attr_values_trgm WHERE attr_values_trgm MATCH "
        ));
        out.bind(Bind::Text(trigram_query(s, grams)));
        out.push(")");
    }
    // Postgres: the pg_trgm GIN index serves the LIKE itself, reading every trigram of its
    // pattern. Driving from the index, ask it for the operand's rarest fragments only
    // (`grams::pg_fragments`) and re-check the whole pattern on what it finds, written on an
    // expression (`val || ''`) so that its trigrams are not read too.
    let fragments = match (cmp, grams) {
        (Some((op, _)), Some(counts)) if drives && !backend.has_trigram_table() => {
            trigram_operand(cmp).and_then(|s| pg_fragments(op, s, counts))
        }
        _ => None,
    };
    for f in fragments.iter().flatten() {
        out.push(&format!(" AND {v}.val LIKE "));
        out.bind(Bind::Text(format!("%{f}%")));
        out.push(" ESCAPE '\\'");
    }
    match (cmp, kind) {
        (None, Kind::Complex) => {}
        (None, _) => {
            out.push(&format!(
                " AND ({v}.num IS NOT NULL OR ({v}.val IS NOT NULL AND {v}.val <> ''))"
            ));
        }
        (Some((op, Operand::Bool(b))), _) => {
            out.push(&format!(" AND {v}.val"));
            out.push(op_sql(op));
            out.bind(Bind::Text(b.to_string()));
        }
        (Some((op, operand @ Operand::Num(_))), _) => {
            out.push(" AND ");
            push_cmp(&format!("{v}.num"), op, operand, out);
        }
        (Some((op, operand)), _) => {
            let col = if fragments.is_some() {
                format!("({v}.val || '')")
            } else {
                format!("{v}.val")
            };
            out.push(" AND ");
            push_cmp(&col, op, operand, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selective_filters_are_those_an_index_narrows() {
        use crate::scim::filter::{parse_filter, resolve, Limits};
        use crate::scim::schema::Registry;
        let registry = Registry::load().unwrap();
        let selective = |text: &str| {
            let parsed = parse_filter(text, &Limits::default()).unwrap();
            is_selective(&resolve(&registry, Rtype::User, &parsed).unwrap())
        };
        for text in [
            "userName eq \"a\"",
            "emails.value co \"abc\"",
            "name.familyName sw \"Jen\"",
            "emails[type eq \"work\"]",
            "userName eq \"a\" or externalId eq \"b\"",
            "active eq true and title eq \"x\"",
        ] {
            assert!(selective(text), "{text}");
        }
        for text in [
            // The type column holds every resource of the list.
            "meta.resourceType eq \"User\"",
            "meta.resourceType eq \"User\" or userName eq \"a\"",
            "active eq true",
            "title pr",
            "userName eq \"\"",
        ] {
            assert!(!selective(text), "{text}");
        }
    }

    /// A filter that is one selective test on `attr_values` of an attribute only Users
    /// define has a key subquery whose distinct keys are its matches; anything more, or an
    /// attribute another type shares, has none.
    #[test]
    fn a_lone_driving_test_of_an_exclusive_attribute_keeps_its_keys() {
        use crate::scim::filter::{parse_filter, resolve, Limits};
        use crate::scim::schema::Registry;
        let registry = Registry::load().unwrap();
        let tenant = TenantId::new("t");
        let keys = |text: &str, backend: Backend| {
            let parsed = parse_filter(text, &Limits::default()).unwrap();
            let cond = resolve(&registry, Rtype::User, &parsed).unwrap();
            let mut t = Translator::new(&tenant, Rtype::User, backend);
            let mut out = Sql::new("");
            t.translate(&cond, &mut out);
            t.take_keys().map(|k| k.text().to_string())
        };
        for backend in Backend::ALL {
            // The keys hold the whole test: each attribute it names has its path test.
            for (text, paths) in [
                ("name.familyName sw \"Jen\"", 1),
                ("emails.value co \"abc\"", 1),
                ("emails[type eq \"work\" and value eq \"a@b\"]", 2),
                (
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"x\"",
                    1,
                ),
            ] {
                let k = keys(text, backend).unwrap_or_else(|| panic!("{text}: no keys"));
                assert!(
                    k.starts_with("SELECT ") && k.contains(".tenant_id = ?"),
                    "{k}"
                );
                assert_eq!(k.matches(".path = ?").count(), paths, "{text}: {k}");
                assert!(!k.contains("r.pk") && !k.contains("r.rtype"), "{text}: {k}");
            }
            for text in [
                // Another conjunct must be tested on the resource row.
                "name.familyName sw \"Jen\" and active eq true",
                "name.familyName sw \"Jen\" or title eq \"x\"",
                "not (name.familyName sw \"Jen\")",
                "emails.value ne \"x\"",
                // A value path with no comparison to drive from walks the elements.
                "emails[type eq \"work\" or value eq \"x\"]",
                // References are keyed by memberships, which hold Users and Groups alike.
                "groups.value eq \"x\"",
                // Columns, and tests most resources pass, are not driven by keys.
                "userName eq \"a\"",
                "title pr",
            ] {
                assert_eq!(keys(text, backend), None, "{text}");
            }
        }
        // Not exclusive: the type test on `resources` is needed.
        let parsed = parse_filter("name.familyName sw \"Jen\"", &Limits::default()).unwrap();
        let mut cond = resolve(&registry, Rtype::User, &parsed).unwrap();
        if let Cond::Cmp(t, ..) = &mut cond {
            t.exclusive = false;
        }
        let mut t = Translator::new(&tenant, Rtype::User, Backend::ALL[0]);
        t.translate(&cond, &mut Sql::new(""));
        assert!(t.take_keys().is_none());
    }

    #[test]
    fn prefix_upper_bounds() {
        assert_eq!(prefix_upper_bound("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_pattern(CompOp::Co, "50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(like_pattern(CompOp::Sw, "ab"), "ab%");
        assert_eq!(like_pattern(CompOp::Ew, "ab"), "%ab");
    }
}
