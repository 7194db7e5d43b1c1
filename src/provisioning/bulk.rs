//! /Bulk (RFC 7644 §3.7): many operations in one request, with `bulkId` cross-references
//! resolved in dependency order, `failOnErrors`, and limits. Each operation is atomic on its
//! own (a savepoint); operations share write transactions in chunks, so a large bulk costs a
//! fraction of the same number of single requests. The request as a whole is not atomic:
//! operations that succeeded before a failure stay (RFC 7644 §3.7.3).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::journal::Journal;
use super::resources::{Change, Done, IfMatch, Output, Target};
use super::{Error, Result, Service};
use crate::auth::Principal;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::projection::Projection;
use crate::scim::schema::Rtype;
use crate::storage::conn::{Conn, Db};

pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// Operations per write transaction: long enough to amortise the commit, short enough that
/// SQLite's single writer is handed to other requests regularly.
const OPS_PER_TRANSACTION: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One operation's outcome, in request order.
#[derive(Debug)]
pub struct Outcome {
    /// The method as sent (an unknown one is echoed back).
    pub method: String,
    pub bulk_id: Option<String>,
    pub result: std::result::Result<Done, Error>,
}

/// A parsed operation.
struct Op {
    index: usize,
    method_text: String,
    method: Option<Method>,
    bulk_id: Option<String>,
    version: Option<String>,
    rt: Option<Rtype>,
    /// The resource id in the path (PUT/PATCH/DELETE), possibly `bulkId:x`.
    id: Option<String>,
    data: Option<Value>,
    /// A problem found before running it.
    invalid: Option<Error>,
    /// bulkIds this operation refers to.
    refs: Vec<String>,
}

fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Every `bulkId:x` string in a value.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.push(id.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// Replaces each `bulkId:x` string with the id created for `x`.
fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, ids)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, ids)),
        _ => {}
    }
}

fn invalid(scim_type: ScimType, detail: String) -> Option<Error> {
    Some(Error::Scim(ScimError::new(scim_type, detail)))
}

fn parse_op(index: usize, v: &Value) -> Op {
    let mut op = Op {
        index,
        method_text: String::new(),
        method: None,
        bulk_id: None,
        version: None,
        rt: None,
        id: None,
        data: None,
        invalid: None,
        refs: Vec::new(),
    };
    let n = index + 1;
    let Some(obj) = v.as_object() else {
        op.invalid = invalid(
            ScimType::InvalidSyntax,
            format!("operation {n} is not an object"),
        );
        return op;
    };
    op.method_text = field(obj, "method")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    op.bulk_id = field(obj, "bulkId")
        .and_then(Value::as_str)
        .map(str::to_string);
    op.version = field(obj, "version")
        .and_then(Value::as_str)
        .map(str::to_string);
    op.data = field(obj, "data").cloned().filter(|d| !d.is_null());
    op.method = match op.method_text.to_ascii_uppercase().as_str() {
        "POST" => Some(Method::Post),
        "PUT" => Some(Method::Put),
        "PATCH" => Some(Method::Patch),
        "DELETE" => Some(Method::Delete),
        _ => {
            op.invalid = invalid(
                ScimType::InvalidSyntax,
                format!(
                    "operation {n}: method `{}` is not POST, PUT, PATCH or DELETE",
                    op.method_text
                ),
            );
            return op;
        }
    };
    let path = field(obj, "path").and_then(Value::as_str).unwrap_or("");
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let endpoint = parts.next().unwrap_or("");
    let id = parts.next().filter(|s| !s.is_empty() && !s.contains('/'));
    op.rt = match endpoint {
        "Users" => Some(Rtype::User),
        "Groups" => Some(Rtype::Group),
        _ => None,
    };
    let wants_id = op.method != Some(Method::Post);
    if op.rt.is_none() || id.is_some() != wants_id {
        let shape = if wants_id {
            "/Users/{id} or /Groups/{id}"
        } else {
            "/Users or /Groups"
        };
        op.invalid = invalid(
            ScimType::InvalidPath,
            format!(
                "operation {n}: path `{path}` is not valid for {}; use {shape}",
                op.method_text
            ),
        );
        return op;
    }
    op.id = id.map(str::to_string);
    if op.method != Some(Method::Delete) && op.data.is_none() {
        op.invalid = invalid(
            ScimType::InvalidSyntax,
            format!("operation {n}: {} needs `data`", op.method_text),
        );
        return op;
    }
    if let Some(d) = &op.data {
        collect_refs(d, &mut op.refs);
    }
    if let Some(b) = op.id.as_deref().and_then(|i| i.strip_prefix("bulkId:")) {
        op.refs.push(b.to_string());
    }
    op
}

/// Limits of one bulk request, advertised in ServiceProviderConfig. Its size is bounded by
/// the server's request body limit (advertised as `bulk.maxPayloadSize`).
#[derive(Clone, Copy, Debug)]
pub struct BulkLimits {
    pub max_operations: usize,
}

impl Service {
    /// POST /Bulk. Request-level problems (not a BulkRequest, too many operations) are errors
    /// before anything runs; problems of one operation are that operation's outcome.
    pub fn bulk(&self, conn: &mut Conn, p: &Principal, body: &Value) -> Result<Vec<Outcome>> {
        super::ensure_write(p)?;
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a BulkRequest must be a JSON object"))?;
        let schemas_ok = field(obj, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(BULK_REQUEST)));
        if !schemas_ok {
            return Err(ScimError::invalid_syntax(format!(
                "`schemas` must be [\"{BULK_REQUEST}\"]"
            ))
            .into());
        }
        let ops = field(obj, "Operations")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ScimError::invalid_syntax("a BulkRequest needs an `Operations` array")
            })?;
        let max = self.settings.bulk.max_operations;
        if ops.len() > max {
            return Err(Error::TooLarge(format!(
                "{} operations in one bulk request; maxOperations is {max}",
                ops.len()
            )));
        }
        let fail_on_errors = match field(obj, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Some(n as usize),
                _ => {
                    return Err(ScimError::invalid_value(
                        "`failOnErrors` must be an integer of 1 or more",
                    )
                    .into())
                }
            },
        };
        let mut ops: Vec<Op> = ops
            .iter()
            .enumerate()
            .map(|(i, v)| parse_op(i, v))
            .collect();

        // bulkIds: defined by POSTs, once each (RFC 7644 §3.7: unique within a request).
        let mut defined: HashMap<String, usize> = HashMap::new();
        for op in ops.iter_mut() {
            if op.invalid.is_some() {
                continue;
            }
            if let Some(b) = &op.bulk_id {
                if op.method == Some(Method::Post) {
                    if defined.contains_key(b) {
                        op.invalid = invalid(
                            ScimType::InvalidValue,
                            format!("bulkId `{b}` is used by an earlier operation; bulkIds must be unique"),
                        );
                    } else {
                        defined.insert(b.clone(), op.index);
                    }
                }
            }
        }
        for op in ops.iter_mut() {
            if op.invalid.is_some() {
                continue;
            }
            if let Some(missing) = op.refs.iter().find(|r| !defined.contains_key(*r)) {
                op.invalid = invalid(
                    ScimType::InvalidValue,
                    format!("`bulkId:{missing}` names no POST operation of this request"),
                );
            }
        }
        let order = dependency_order(&ops, &defined);

        let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
        let mut created: HashMap<String, String> = HashMap::new();
        let mut failed_defs: HashSet<String> = HashSet::new();
        let mut errors = 0usize;
        let mut cursor = 0;
        'chunks: while cursor < order.len() {
            let chunk: Vec<(usize, bool)> =
                order[cursor..(cursor + OPS_PER_TRANSACTION).min(order.len())].to_vec();
            let mut stop = false;
            // One write per chunk: the feed entries of the operations that held are appended
            // last, as for single requests (see `Service::write`).
            let results = self.write(conn, p, |db, journal| {
                let mut results = Vec::new();
                let mut batched: HashMap<usize, Done> = HashMap::new();
                // After a batch fails, its operations run one by one (never re-batched).
                let mut no_batch_until = 0;
                for (k, step) in chunk.iter().enumerate() {
                    let (i, cyclic) = *step;
                    let op = &ops[i];
                    if k >= no_batch_until && !batched.contains_key(&i) && self.batchable(op, cyclic) {
                        // Fast path: this and the following plain user creates in a few
                        // statements; on any failure, they run one by one below instead.
                        let run: Vec<usize> = chunk[k..]
                            .iter()
                            .take_while(|(j, c)| self.batchable(&ops[*j], *c))
                            .map(|(j, _)| *j)
                            .collect();
                        if run.len() > 1 {
                            let bodies: Vec<Value> = run.iter().map(|j| ops[*j].data.clone().unwrap_or(Value::Null)).collect();
                            let batch = db.savepoint(|db| {
                                    let mut jj = self.journal(p);
                                    let ids = self.create_users_in(db, &mut jj, p, &bodies)?;
                                    Ok::<_, Error>((ids, jj))
                                });
                            match batch {
                                Ok((ids, jj)) => {
                                    journal.absorb(jj);
                                    for (j, id) in run.iter().zip(ids) {
                                        batched.insert(*j, self.created_output(Rtype::User, id));
                                    }
                                }
                                Err(_) => no_batch_until = k + run.len(),
                            }
                        }
                    }
                    let result = if let Some(done) = batched.remove(&i) {
                        Ok(done)
                    } else if let Some(e) = &op.invalid {
                        Err(clone_error(e))
                    } else if cyclic {
                        Err(Error::Conflict(format!(
                            "operation {} is part of a circular bulkId reference that cannot be resolved",
                            i + 1
                        )))
                    } else if let Some(dep) = op.refs.iter().find(|r| failed_defs.contains(*r)) {
                        Err(Error::Conflict(format!(
                            "`bulkId:{dep}` cannot be resolved: the operation that creates it failed"
                        )))
                    } else {
                        // A failure is this operation's alone: its savepoint rolled back, the
                        // others go on (a server-side error shows as its 500; a broken
                        // transaction fails the commit, and so the request).
                        db.savepoint(|db| {
                            let mut jj = self.journal(p);
                            let done = self.run_op(db, &mut jj, p, op, &created)?;
                            Ok::<_, Error>((done, jj))
                        })
                        .map(|(done, jj)| {
                            journal.absorb(jj);
                            done
                        })
                    };
                    match (&result, &op.bulk_id, op.method) {
                        (Ok(Done::Resource { output, .. }), Some(b), Some(Method::Post)) => {
                            if let Some(id) = output.resource.get("id").and_then(Value::as_str) {
                                created.insert(b.clone(), id.to_string());
                            }
                        }
                        (Err(_), Some(b), Some(Method::Post)) => {
                            failed_defs.insert(b.clone());
                        }
                        _ => {}
                    }
                    if result.is_err() {
                        errors += 1;
                    }
                    results.push((i, result));
                    if fail_on_errors.is_some_and(|f| errors >= f) {
                        stop = true;
                        break;
                    }
                }
                Ok(results)
            })?;
            for (i, result) in results {
                let op = &ops[i];
                outcomes.insert(
                    i,
                    Outcome {
                        method: op
                            .method
                            .map(|m| m.as_str().to_string())
                            .unwrap_or_else(|| op.method_text.clone()),
                        bulk_id: op.bulk_id.clone(),
                        result,
                    },
                );
            }
            if stop {
                break 'chunks;
            }
            cursor += chunk.len();
        }
        Ok(outcomes.into_values().collect())
    }

    /// A POST /Users whose data refers to no bulkId: it can be written with its neighbours.
    fn batchable(&self, op: &Op, cyclic: bool) -> bool {
        op.invalid.is_none()
            && !cyclic
            && op.method == Some(Method::Post)
            && op.rt == Some(Rtype::User)
            && op.refs.is_empty()
    }

    /// What a bulk response says of a created resource: its id, location and version.
    fn created_output(&self, rt: Rtype, id: String) -> Done {
        Done::Resource {
            status: 201,
            output: Output {
                location: self.location(rt, &id),
                resource: serde_json::json!({ "id": id }),
                version: 1,
            },
        }
    }

    fn run_op(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        op: &Op,
        created: &HashMap<String, String>,
    ) -> Result<Done> {
        let (Some(method), Some(rt)) = (op.method, op.rt) else {
            return Err(ScimError::invalid_syntax("malformed operation").into());
        };
        let mut data = op.data.clone().unwrap_or(Value::Null);
        substitute(&mut data, created);
        let id = op.id.as_deref().map(|i| match i.strip_prefix("bulkId:") {
            Some(b) => created.get(b).cloned().unwrap_or_else(|| i.to_string()),
            None => i.to_string(),
        });
        let target = |id: String| Target {
            rt,
            id,
            if_match: op.version.as_deref().map(IfMatch::parse),
        };
        let change = match (method, id) {
            (Method::Post, _) => Change::Create(rt, data),
            (Method::Put, Some(id)) => Change::Replace(target(id), data),
            (Method::Patch, Some(id)) => Change::patch(target(id), &data, p)?,
            (Method::Delete, Some(id)) => Change::Delete(target(id)),
            _ => return Err(ScimError::invalid_syntax("malformed operation").into()),
        };
        self.change_in(db, j, p, &change, &Projection::default())
    }
}

/// Errors are not Clone (they may carry a database source); an operation's validation error
/// is always a SCIM error, which is.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Scim(s) => Error::Scim(s.clone()),
        other => Error::Scim(ScimError::invalid_value(other.to_string())),
    }
}

/// The order to run operations in: each after the POSTs whose bulkIds it references, else in
/// request order (Kahn's algorithm, lowest index first). Operations left in a cycle come last,
/// marked `true`: RFC 7644 §3.7.1 lets the server answer them 409.
fn dependency_order(ops: &[Op], defined: &HashMap<String, usize>) -> Vec<(usize, bool)> {
    let n = ops.len();
    let mut indegree = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for op in ops {
        if op.invalid.is_some() {
            continue;
        }
        let mut deps: Vec<usize> = op
            .refs
            .iter()
            .filter_map(|r| defined.get(r).copied())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        for d in deps {
            if d == op.index {
                // A POST referring to its own bulkId can never be resolved.
                indegree[op.index] = usize::MAX / 2;
                continue;
            }
            indegree[op.index] += 1;
            dependents[d].push(op.index);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    while let Some(i) = ready.pop_first() {
        order.push((i, false));
        placed[i] = true;
        for &d in &dependents[i] {
            indegree[d] = indegree[d].saturating_sub(1);
            if indegree[d] == 0 {
                ready.insert(d);
            }
        }
    }
    order.extend((0..n).filter(|&i| !placed[i]).map(|i| (i, true)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(list: Value) -> (Vec<Op>, HashMap<String, usize>) {
        let ops: Vec<Op> = list
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, v)| parse_op(i, v))
            .collect();
        let defined = ops
            .iter()
            .filter(|o| o.method == Some(Method::Post))
            .filter_map(|o| o.bulk_id.clone().map(|b| (b, o.index)))
            .collect();
        (ops, defined)
    }

    #[test]
    fn references_run_after_their_targets_in_either_direction() {
        let (o, d) = ops(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"members": [{"value": "bulkId:u"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "x"}},
            {"method": "PATCH", "path": "/Groups/bulkId:g", "data": {}}
        ]));
        assert_eq!(
            dependency_order(&o, &d),
            vec![(1, false), (0, false), (2, false)]
        );
    }

    #[test]
    fn cycles_are_marked() {
        let (o, d) = ops(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "a", "data": {"members": [{"value": "bulkId:b"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "b", "data": {"members": [{"value": "bulkId:a"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"userName": "c"}},
            {"method": "POST", "path": "/Groups", "bulkId": "s", "data": {"members": [{"value": "bulkId:s"}]}}
        ]));
        assert_eq!(
            dependency_order(&o, &d),
            vec![(2, false), (0, true), (1, true), (3, true)]
        );
    }

    #[test]
    fn paths_and_methods_are_checked_per_operation() {
        let (o, _) = ops(json!([
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Widgets", "data": {}},
            {"method": "POST", "path": "/Users/abc", "data": {}},
            {"method": "DELETE", "path": "/Users"},
            {"method": "PUT", "path": "/Users/abc"},
            {"method": "delete", "path": "/Groups/abc"}
        ]));
        let kinds: Vec<Option<ScimType>> = o
            .iter()
            .map(|op| match &op.invalid {
                Some(Error::Scim(s)) => Some(s.scim_type),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                Some(ScimType::InvalidSyntax),
                Some(ScimType::InvalidPath),
                Some(ScimType::InvalidPath),
                Some(ScimType::InvalidPath),
                Some(ScimType::InvalidSyntax),
                None
            ]
        );
    }

    #[test]
    fn substitution_replaces_only_whole_bulk_id_strings() {
        let mut v = json!({"members": [{"value": "bulkId:u"}, {"value": "xbulkId:u"}], "manager": {"value": "bulkId:m"}});
        let ids: HashMap<String, String> = [("u".to_string(), "id-u".to_string())].into();
        substitute(&mut v, &ids);
        assert_eq!(v["members"][0]["value"], "id-u");
        assert_eq!(v["members"][1]["value"], "xbulkId:u");
        assert_eq!(v["manager"]["value"], "bulkId:m");
    }
}
