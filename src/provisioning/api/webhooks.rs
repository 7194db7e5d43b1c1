//! Webhook subscriptions (a URL, the event types it wants, a Standard Webhooks secret), their
//! recent deliveries, and their dead letters (deliveries that ran out of retries), which an
//! admin may replay.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::Ref;
use utoipa::ToSchema;

use super::{cursor, decode, found, invalid, page_limit, paged, ListParams, Page, Shown};
use crate::auth::Principal;
use crate::product::PRODUCT_EVENTS;
use crate::provisioning::journal::new_id;
use crate::provisioning::{Error, Result, Service};
use crate::scim::events::SCIM_EVENTS;
use crate::scim::time::{format_micros, now_micros};
use crate::storage::conn::Conn;
use crate::storage::deliveries::{self, DeliveryRow, Status, WebhookRow};
use crate::storage::feed::SeqWindow;
use crate::webhooks::{wire, Policy};

/// A subscription (its secret is never shown again).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    /// An http(s) URL.
    #[schema(format = "uri")]
    pub url: String,
    /// Event types it wants; ["*"] for all.
    pub events: Vec<String>,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub created: String,
}

/// A new subscription with its `secret`, shown once.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of the HMAC key: verify each delivery's `webhook-signature` with it.
    #[schema(pattern = "^whsec_")]
    pub secret: String,
}

/// The body of `POST /webhooks`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// An http(s) URL.
    #[schema(value_type = String, required = true, format = "uri")]
    pub url: Option<String>,
    /// Event types to deliver; ["*"] for all.
    #[schema(required = true, schema_with = event_list)]
    pub events: Option<Vec<String>>,
    /// Optional `whsec_` + base64 of 24 to 64 random bytes; generated when absent.
    #[schema(value_type = String, pattern = "^whsec_")]
    pub secret: Option<String>,
}

/// Which of a subscription's deliveries a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deliveries {
    /// `GET /webhooks/{id}/dead-letters`: those that ran out of retries, in feed order.
    DeadLetters,
    /// `GET /webhooks/{id}/deliveries`: all (or those of `status`), newest first.
    Recent,
}

/// A non-empty list of event types, or `["*"]`.
fn event_list() -> ArrayBuilder {
    ArrayBuilder::new().min_items(Some(1)).items(
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("EventType"))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["*"])),
            ),
    )
}

/// One event queued for one webhook (a dead letter is one with status `dead`). A replay sets
/// `status` to `pending`, `attempts` to 0 and `created` to the time of the replay.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    /// Webhook id.
    pub webhook: String,
    #[schema(format = "uuid")]
    pub event_id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    #[schema(schema_with = event_type_ref)]
    pub kind: String,
    #[schema(schema_with = delivery_status)]
    pub status: String,
    #[schema(minimum = 0)]
    pub attempts: i32,
    /// Why the last failed attempt failed: `timeout`, `connect`, `tls`, `http <status>`,
    /// `refused by destination policy` or `internal error`; null after a successful attempt
    /// or before any.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When the last attempt started: RFC 3339 in UTC, or null before the first attempt.
    #[schema(required = true, format = DateTime)]
    pub last_attempt_at: Option<String>,
    /// RFC 3339 in UTC while `status` is `pending`; null otherwise.
    #[schema(required = true, format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub created: String,
}

fn event_type_ref() -> Ref {
    Ref::from_schema_name("EventType")
}

fn delivery_status() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            [Status::Pending, Status::Delivered, Status::Dead].map(Status::as_str),
        ))
}

impl Shown for Webhook {
    type Row = WebhookRow;
    const NAME: &'static str = "webhook";

    fn of(row: &WebhookRow) -> Webhook {
        Webhook {
            id: row.id.clone(),
            url: row.url.clone(),
            events: row.events.clone(),
            created: format_micros(row.created),
        }
    }
}

fn delivery_view(d: &DeliveryRow) -> Delivery {
    Delivery {
        id: d.id.clone(),
        webhook: d.webhook_id.clone(),
        event_id: d.event_id.clone(),
        seq: d.seq,
        kind: d.kind.clone(),
        status: d.status.as_str().to_string(),
        attempts: d.attempts,
        last_error: d.last_error.clone(),
        last_attempt_at: d.last_attempt.map(format_micros),
        next_attempt_at: (d.status == Status::Pending).then(|| format_micros(d.next_at)),
        created: format_micros(d.created),
    }
}

/// A subscription body, checked: its URL (against the destination policy; returned
/// normalised), event types and secret (generated when absent).
fn webhook_fields(policy: &Policy, body: WebhookInput) -> Result<(String, Vec<String>, String)> {
    let url = body
        .url
        .ok_or_else(|| invalid("a webhook needs `url`: an http or https URL"))?;
    let url = policy
        .check_url(&url)
        .map_err(|why| invalid(format!("webhook url `{url}` {why}")))?;
    let events = body.events.filter(|e| !e.is_empty()).ok_or_else(|| {
        invalid("a webhook needs `events`: a non-empty list of event types, or [\"*\"]")
    })?;
    for e in &events {
        if e != "*" && !SCIM_EVENTS.contains(&e.as_str()) && !PRODUCT_EVENTS.contains(&e.as_str()) {
            return Err(invalid(format!(
                "unknown event type `{e}`; known: {}, {} or *",
                SCIM_EVENTS.join(", "),
                PRODUCT_EVENTS.join(", ")
            )));
        }
    }
    let secret = match body.secret {
        None => wire::generate_secret(),
        Some(s) => {
            wire::check_secret(&s).map_err(Error::Invalid)?;
            s
        }
    };
    Ok((url, events, secret))
}

impl Service {
    pub fn create_webhook(
        &self,
        conn: &mut Conn,
        p: &Principal,
        body: Value,
    ) -> Result<WebhookCreated> {
        let (url, events, secret) = webhook_fields(
            &self.webhooks.policy,
            decode(
                body,
                "a webhook is {\"url\", \"events\": [...], \"secret\"?}",
            )?,
        )?;
        let max = self.settings.max_webhooks;
        self.admin_write(conn, p, |db, _| {
            let n = deliveries::count_webhooks_locked(db, &p.tenant)?;
            if usize::try_from(n).unwrap_or(usize::MAX) >= max {
                return Err(Error::Conflict(format!(
                    "this tenant has {n} webhook subscriptions, the most the server allows \
                     (--webhook-max-subscriptions {max}); delete one first"
                )));
            }
            let row = WebhookRow {
                id: new_id(),
                url,
                events,
                secret,
                created: now_micros(),
            };
            deliveries::insert_webhook(db, &p.tenant, &row)?;
            Ok(WebhookCreated {
                webhook: Webhook::of(&row),
                secret: row.secret,
            })
        })
    }

    pub fn delete_webhook(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<()> {
        self.admin_write(conn, p, |db, _| {
            if deliveries::delete_webhook(db, &p.tenant, id)? == 0 {
                return Err(Error::NotFound(format!("webhook {id} not found")));
            }
            Ok(())
        })
    }

    /// A subscription's deliveries, paged: its dead letters in feed order, or its recent
    /// deliveries newest first (of one `status` when the query names one).
    pub fn deliveries(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        which: Deliveries,
        q: &ListParams,
    ) -> Result<Page<Delivery>> {
        let kind = match which {
            Deliveries::DeadLetters => "d",
            Deliveries::Recent => "r",
        };
        let at = cursor::decode_key(q.cursor.as_deref(), kind)?;
        let status = match (which, q.status.as_deref()) {
            (Deliveries::DeadLetters, _) | (Deliveries::Recent, None) => None,
            (Deliveries::Recent, Some(s)) => Some(Status::parse(s).ok_or_else(|| {
                invalid(format!(
                    "unknown delivery status `{s}`: use pending, delivered or dead"
                ))
            })?),
        };
        let limit = page_limit(q.limit)?;
        self.admin_read(conn, p, |db| {
            found::<Webhook>(db, &p.tenant, id)?;
            let rows = match which {
                Deliveries::DeadLetters => {
                    let after = at.unwrap_or(0);
                    let window = SeqWindow {
                        after,
                        limit: limit + 1,
                    };
                    deliveries::dead_letters(db, &p.tenant, id, window)?
                }
                Deliveries::Recent => deliveries::recent(db, &p.tenant, id, status, at, limit + 1)?,
            };
            paged(
                rows,
                limit,
                |r| cursor::encode(kind, &r.seq.to_string()),
                |r| Ok(delivery_view(r)),
            )
        })
    }

    /// Queues a dead letter again (attempts reset).
    pub fn replay(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<Delivery> {
        self.admin_write(conn, p, |db, _| {
            let not_found = || Error::NotFound(format!("delivery {id} not found"));
            let d = deliveries::get_delivery(db, &p.tenant, id)?.ok_or_else(not_found)?;
            if d.status != Status::Dead {
                return Err(Error::Conflict(format!(
                    "delivery {id} is {}, not dead: only a dead letter can be replayed",
                    d.status.as_str()
                )));
            }
            deliveries::requeue(db, &p.tenant, id, now_micros())?;
            let d = deliveries::get_delivery(db, &p.tenant, id)?.ok_or_else(not_found)?;
            Ok(delivery_view(&d))
        })
    }
}
