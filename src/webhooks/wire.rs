//! The webhook wire format (Standard Webhooks, https://www.standardwebhooks.com/): the body
//! of a delivery (a feed event, exactly as `GET /api/v1/events` shows it), its signature, and
//! the `whsec_` secret format. Depends only on storage (the feed row it renders).

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

use crate::product::PRODUCT_EVENTS;
use crate::scim::events::SCIM_EVENTS;
use crate::scim::time::format_micros;
use crate::storage::feed::FeedRow;
use crate::storage::{decode_json, StoreResult};

/// An entry of the change feed, written in the same transaction as the change. `seq` is per
/// tenant, gap-free and increasing. `GET /api/v1/events` answers these, and a webhook
/// delivery POSTs one.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[schema(minimum = 1, examples(42))]
    pub seq: i64,
    /// Event id (also the webhook-id of its deliveries).
    #[schema(format = "uuid")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(schema_with = event_type_ref)]
    pub kind: String,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub time: String,
    #[schema(required = true, format = "uuid")]
    pub account_id: Option<String>,
    #[schema(required = true, schema_with = resource_type)]
    pub resource_type: Option<String>,
    /// SCIM id.
    #[schema(required = true)]
    pub resource_id: Option<String>,
    #[schema(schema_with = event_data)]
    pub data: Value,
}

/// The event types of the feed: SCIM changes (RFC 9967 URNs) and product events (`account.*`).
pub fn event_types() -> impl Iterator<Item = &'static str> {
    SCIM_EVENTS.into_iter().chain(PRODUCT_EVENTS)
}

/// The `EventType` schema: every type the feed carries.
pub fn event_type_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(event_types()))
        .description(Some(
            "SCIM change types (urn:ietf:params:scim:event:prov:...) and product event types (account.*).",
        ))
        .into()
}

fn resource_type() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["User", "Group"]))
        .description(Some("The SCIM resource type the event is about."))
}

fn event_type_ref() -> Ref {
    Ref::from_schema_name("EventType")
}

/// `data` is one of two shapes, by the event's type (their schemas are components).
fn event_data() -> AnyOfBuilder {
    AnyOfBuilder::new()
        .item(Ref::from_schema_name("SecurityEventToken"))
        .item(Ref::from_schema_name("AccountEventData"))
}

impl Event {
    /// The event of a feed row; a row whose data does not decode is `Corrupt`, naming it.
    pub fn from_feed(row: &FeedRow) -> StoreResult<Event> {
        Ok(Event {
            data: decode_json("feed", &row.id, "data", &row.data)?,
            seq: row.seq,
            id: row.id.clone(),
            kind: row.kind.clone(),
            time: format_micros(row.at),
            account_id: row.account_id.clone(),
            resource_type: row.resource_type.clone(),
            resource_id: row.resource_id.clone(),
        })
    }
}

/// The Standard Webhooks signature: `v1,` and base64(HMAC-SHA256(key, "id.timestamp.body")).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes.
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The key bytes of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_")?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// A secret a subscriber may choose: `whsec_` and the base64 of 24 to 64 bytes.
pub fn check_secret(s: &str) -> Result<(), String> {
    match secret_key(s) {
        Some(k) if (24..=64).contains(&k.len()) => Ok(()),
        _ => {
            Err("`secret` must be `whsec_` followed by the base64 of 24 to 64 random bytes".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_checked() {
        let s = generate_secret();
        assert!(check_secret(&s).is_ok());
        assert_eq!(secret_key(&s).unwrap().len(), 32);
        assert!(check_secret("whsec_c2hvcnQ=").is_err());
        assert!(check_secret("plain").is_err());
    }

    #[test]
    fn an_event_whose_data_does_not_decode_names_its_row() {
        let row = FeedRow {
            seq: 3,
            id: "ev-1".into(),
            kind: "account.activated".into(),
            account_id: None,
            resource_type: None,
            resource_id: None,
            at: 0,
            data: "{broken".into(),
            credential_id: None,
        };
        let e = Event::from_feed(&row).unwrap_err().to_string();
        assert!(e.contains("feed") && e.contains("ev-1"), "{e}");
    }
}
