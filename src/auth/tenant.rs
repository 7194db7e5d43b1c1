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

/// A tenant's whole dialect: every tolerance off (`strict`) or on (`lenient`), whatever the
/// server's default, including tolerances added after it was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Strict,
    Lenient,
}

/// The tolerances that existed when a tenant's `--strict`/`--lenient` was stored as one
/// entry per tolerance (before `dialect`); such a setting is read back as the dialect.
/// `Compat::NAMES` lists them first, in the order they were added.
const LEGACY_NAMES: &[&str] = Compat::NAMES.split_at(6).0;

/// What a tenant has set: a whole dialect or none (the server's), then single tolerances on
/// top of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub compat: BTreeMap<String, bool>,
}

impl TenantSettings {
    pub fn parse(json: &str) -> Result<TenantSettings, serde_json::Error> {
        let mut s: TenantSettings = serde_json::from_str(json)?;
        if s.dialect.is_none() {
            let legacy: Vec<bool> = LEGACY_NAMES
                .iter()
                .filter_map(|n| s.compat.get(*n).copied())
                .collect();
            if legacy.len() == LEGACY_NAMES.len() && legacy.windows(2).all(|w| w[0] == w[1]) {
                let on = legacy[0];
                s.dialect = Some(if on {
                    Dialect::Lenient
                } else {
                    Dialect::Strict
                });
                s.compat.retain(|_, v| *v != on);
            }
        }
        Ok(s)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The tolerances in force for this tenant on a server whose default is `server`.
    /// Names this version does not know are ignored.
    pub fn compat(&self, server: Compat) -> Compat {
        let mut c = match self.dialect {
            None => server,
            Some(Dialect::Strict) => Compat::strict(),
            Some(Dialect::Lenient) => Compat::default(),
        };
        for (name, on) in &self.compat {
            if let Some(f) = flag(&mut c, name) {
                *f = *on;
            }
        }
        c
    }

    /// Every tolerance on (`lenient`) or off (`strict`), whatever the server default; forgets
    /// single settings.
    pub fn set_all(&mut self, on: bool) {
        self.dialect = Some(if on {
            Dialect::Lenient
        } else {
            Dialect::Strict
        });
        self.compat.clear();
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
        self.dialect = None;
        self.compat.clear();
    }

    /// A one-line summary for `tenant list`.
    pub fn describe(&self) -> String {
        let base = match self.dialect {
            None => "server default",
            Some(Dialect::Strict) => "strict",
            Some(Dialect::Lenient) => "lenient",
        };
        let parts: Vec<String> = self
            .compat
            .iter()
            .filter(|(k, _)| TOLERANCES.contains(&k.as_str()))
            .map(|(k, on)| format!("{k}={}", if *on { "on" } else { "off" }))
            .collect();
        match (self.dialect, parts.is_empty()) {
            (_, true) => format!("dialect: {base}"),
            (None, false) => format!("dialect: {}", parts.join(",")),
            (Some(_), false) => format!("dialect: {base}, {}", parts.join(",")),
        }
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
        // Strict plus one tolerance back on.
        strict.set("dotted_keys", true).unwrap();
        let c = strict.compat(Compat::default());
        assert!(c.dotted_keys && !c.boolean_strings && !c.ignore_undeclared_schemas);
        assert_eq!(strict.describe(), "dialect: strict, dotted_keys=on");
        assert_eq!(TenantSettings::parse(&strict.to_json()).unwrap(), strict);
        let mut lenient = TenantSettings::default();
        lenient.set_all(true);
        assert_eq!(lenient.compat(Compat::strict()), Compat::default());
        assert_eq!(lenient.describe(), "dialect: lenient");

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

    #[test]
    fn a_strict_tenant_stored_per_tolerance_stays_strict_for_new_tolerances() {
        // What `tenant set --strict` stored before `dialect` existed.
        let old = r#"{"compat":{"boolean_strings":false,"op_case_insensitive":false,
            "remove_members_by_value":false,"dotted_keys":false,"create_on_filtered_path":false,
            "ignore_read_only_in_patch":false,"complex_value_from_string":false}}"#;
        let s = TenantSettings::parse(old).unwrap();
        assert_eq!(s.dialect, Some(Dialect::Strict));
        assert_eq!(s.compat(Compat::default()), Compat::strict());
        assert_eq!(s.describe(), "dialect: strict");
        // A partial old setting stays what it was: single tolerances on the server default.
        let one = TenantSettings::parse(r#"{"compat":{"dotted_keys":false}}"#).unwrap();
        assert_eq!(one.dialect, None);
        assert!(!one.compat(Compat::default()).dotted_keys);
        assert!(one.compat(Compat::default()).ignore_undeclared_schemas);
    }
}
