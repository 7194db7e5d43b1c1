//! The provisioning event types of RFC 9967 (SCIM Profile for Security Event Tokens) that
//! Scimitar emits in its change feed. Pure constants.

/// The prefix of every SCIM event URN (`...:create:full`, `...:delete`).
pub const SCIM_EVENT_PREFIX: &str = "urn:ietf:params:scim:event:prov:";

/// Every SCIM event type Scimitar emits.
pub const SCIM_EVENTS: [&str; 6] = [
    "urn:ietf:params:scim:event:prov:create:full",
    "urn:ietf:params:scim:event:prov:put:full",
    "urn:ietf:params:scim:event:prov:patch:full",
    "urn:ietf:params:scim:event:prov:activate",
    "urn:ietf:params:scim:event:prov:deactivate",
    "urn:ietf:params:scim:event:prov:delete",
];
