//! Per-tenant settings, stored as a JSON object in `tenants.settings` and loaded with the
//! principal: today the client-dialect tolerances of `scim::compat::Compat`, each either set
//! for the tenant or left to the server-wide default (`--strict`). Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scim::compat::Compat;

/// The tolerances by name, as `scimitar tenant set --tolerance NAME=on|off` takes them.
pub const TOLERANCES: &[&str] = Compat::NAMES;

fn flag<'a>(c: &'a mut Compat, name: &str) -> Option<&'a mut bool> {
    c.flag_mut(name)
}

/// What a tenant has set. Unset tolerances follow the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub compat: BTreeMap<String, bool>,
}

impl TenantSettings {
    pub fn parse(json: &str) -> Result<TenantSettings, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The tolerances in force for this tenant on a server whose default is `server`.
    /// Names this version does not know are ignored.
    pub fn compat(&self, server: Compat) -> Compat {
        let mut c = server;
        for (name, on) in &self.compat {
            if let Some(f) = flag(&mut c, name) {
                *f = *on;
            }
        }
        c
    }

    /// Every tolerance on (`lenient`) or off (`strict`), whatever the server default.
    pub fn set_all(&mut self, on: bool) {
        for name in TOLERANCES {
            self.compat.insert((*name).to_string(), on);
        }
    }

    pub fn set(&mut self, name: &str, on: bool) -> Result<(), String> {
        if !TOLERANCES.contains(&name) {
            return Err(format!(
                "unknown tolerance `{name}`; known: {}",
                TOLERANCES.join(", ")
            ));
        }
        self.compat.insert(name.to_string(), on);
        Ok(())
    }

    /// Back to the server-wide default for every tolerance.
    pub fn reset(&mut self) {
        self.compat.clear();
    }

    /// A one-line summary for `tenant list`.
    pub fn describe(&self) -> String {
        let known: Vec<(&String, &bool)> = self
            .compat
            .iter()
            .filter(|(k, _)| TOLERANCES.contains(&k.as_str()))
            .collect();
        if known.is_empty() {
            return "dialect: server default".into();
        }
        if known.len() == TOLERANCES.len() && known.iter().all(|(_, on)| !**on) {
            return "dialect: strict".into();
        }
        if known.len() == TOLERANCES.len() && known.iter().all(|(_, on)| **on) {
            return "dialect: lenient".into();
        }
        let parts: Vec<String> = known
            .iter()
            .map(|(k, on)| format!("{k}={}", if **on { "on" } else { "off" }))
            .collect();
        format!("dialect: {}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_follows_the_server_and_set_overrides_it() {
        let s = TenantSettings::parse("{}").unwrap();
        assert_eq!(s.compat(Compat::default()), Compat::default());
        assert_eq!(s.compat(Compat::strict()), Compat::strict());
        assert_eq!(s.describe(), "dialect: server default");

        let mut strict = TenantSettings::default();
        strict.set_all(false);
        assert_eq!(strict.compat(Compat::default()), Compat::strict());
        assert_eq!(strict.describe(), "dialect: strict");
        let round = TenantSettings::parse(&strict.to_json()).unwrap();
        assert_eq!(round, strict);

        let mut one = TenantSettings::default();
        one.set("boolean_strings", false).unwrap();
        let c = one.compat(Compat::default());
        assert!(!c.boolean_strings && c.op_case_insensitive);
        assert_eq!(one.describe(), "dialect: boolean_strings=off");
        assert!(one.set("no_such", true).is_err());
    }

    #[test]
    fn every_named_tolerance_maps_to_a_flag() {
        for name in TOLERANCES {
            let mut s = TenantSettings::default();
            s.set(name, false).unwrap();
            assert_ne!(s.compat(Compat::default()), Compat::default(), "{name}");
        }
        let future = TenantSettings::parse(r#"{"compat":{"from_the_future":false}}"#).unwrap();
        assert_eq!(future.compat(Compat::default()), Compat::default());
    }
}
