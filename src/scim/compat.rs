//! Client dialects: the deviations from RFC 7643/7644 that real clients (Microsoft Entra ID,
//! Okta, hand-written scripts) send, each a named switch. All are on by default;
//! `Compat::strict()` (`serve --strict`, or a tenant's `--strict` dialect setting) turns them
//! all off for conformance testing. The parser, validator and PATCH engine consult these
//! flags only by name, so every tolerance is visible in one place. Pure.

/// Which tolerances are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compat {
    /// Entra ID sends booleans as strings (`"active": "False"`): accept "true"/"false" in any
    /// case for boolean attributes.
    pub boolean_strings: bool,
    /// Entra ID sends PATCH `op` capitalised (`"Replace"`, `"Add"`, `"Remove"`).
    pub op_case_insensitive: bool,
    /// Entra ID removes members with `{"op":"remove","path":"members","value":[{"value":id}]}`
    /// meaning "remove these", not "remove all".
    pub remove_members_by_value: bool,
    /// Entra ID sends no-path `replace` values with dotted keys (`"name.givenName"`).
    pub dotted_keys: bool,
    /// Entra ID adds/replaces `emails[type eq "work"].value` when no work email exists yet:
    /// create the element instead of answering `noTarget` (RFC 7644 §3.5.2.3), but only when
    /// the filter pins `type` to one of the attribute's canonical values (`work`, `home`,
    /// `other` for emails; the schema's `canonicalValues`) and is otherwise `eq` tests joined
    /// by `and`. Any other filter that matches nothing is `noTarget`.
    pub create_on_filtered_path: bool,
    /// Some clients carry the resource's own `id` (or other readOnly attributes) in a no-path
    /// `replace` value: ignore them instead of answering `mutability`.
    pub ignore_read_only_in_patch: bool,
    /// Entra ID sets the enterprise `manager` to a bare id string
    /// (`"path": "urn:...:enterprise:2.0:User:manager", "value": "26118915-..."`): read a string
    /// given for a singular complex attribute that has a `value` sub-attribute as
    /// `{"value": ...}`.
    pub complex_value_from_string: bool,
    /// Entra ID's group create lists
    /// `http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`, a URI no
    /// resource type declares and no attribute of the body uses: a schema URI in `schemas`
    /// that this server does not know at all (no resource type declares it, `/Schemas` does
    /// not list it) and that carries no attributes in the body is ignored and never echoed.
    /// Okta's custom-profile namespaces (`urn:okta:{app}:1.0:user:{schema}`) and Entra's
    /// custom extensions (`urn:ietf:params:scim:schemas:extension:{name}:2.0:User`) fall under
    /// the same rule: ignored when they carry nothing, refused (`invalidValue`) when they carry
    /// attributes, since no resource type here declares them.
    pub ignore_undeclared_schemas: bool,
    /// Entra ID matches users with `emails[type eq "work"].value eq "x"`, a filter the RFC
    /// 7644 §3.4.2.2 ABNF does not have (a sub-attribute after `]` is PATCH path syntax):
    /// read it as `emails[type eq "work" and value eq "x"]`.
    pub filter_value_path_sub: bool,
    /// A POST/PUT body without `schemas` (RFC 7643 §3 makes it REQUIRED) is read as naming
    /// the resource type's core schema. Neither Entra ID nor Okta omits it; hand-written
    /// clients and scripts often do.
    pub schemas_optional: bool,
}

impl Default for Compat {
    fn default() -> Compat {
        Compat::all(true)
    }
}

impl Compat {
    /// Every tolerance by name (per-tenant settings and the admin commands use these), in
    /// the order they were added: a new one goes last (stored settings read the first six
    /// as the set that existed before dialects).
    pub const NAMES: &'static [&'static str] = &[
        "boolean_strings",
        "op_case_insensitive",
        "remove_members_by_value",
        "dotted_keys",
        "create_on_filtered_path",
        "ignore_read_only_in_patch",
        "complex_value_from_string",
        "ignore_undeclared_schemas",
        "filter_value_path_sub",
        "schemas_optional",
    ];

    /// The flag called `name` (one of `NAMES`).
    pub fn flag_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "boolean_strings" => &mut self.boolean_strings,
            "op_case_insensitive" => &mut self.op_case_insensitive,
            "remove_members_by_value" => &mut self.remove_members_by_value,
            "dotted_keys" => &mut self.dotted_keys,
            "create_on_filtered_path" => &mut self.create_on_filtered_path,
            "ignore_read_only_in_patch" => &mut self.ignore_read_only_in_patch,
            "complex_value_from_string" => &mut self.complex_value_from_string,
            "ignore_undeclared_schemas" => &mut self.ignore_undeclared_schemas,
            "filter_value_path_sub" => &mut self.filter_value_path_sub,
            "schemas_optional" => &mut self.schemas_optional,
            _ => return None,
        })
    }

    /// The end of an error detail for a request that tolerance `name` (off here) would have
    /// accepted, so a client or operator sees which switch is involved.
    pub fn off_note(name: &str) -> String {
        format!(" (the `{name}` client-dialect tolerance, which would accept this, is off)")
    }

    /// Everything by the letter of the RFCs.
    pub fn strict() -> Compat {
        Compat::all(false)
    }

    /// Every tolerance on or every one off: the one place that lists the fields.
    fn all(on: bool) -> Compat {
        Compat {
            boolean_strings: on,
            op_case_insensitive: on,
            remove_members_by_value: on,
            dotted_keys: on,
            create_on_filtered_path: on,
            ignore_read_only_in_patch: on,
            complex_value_from_string: on,
            ignore_undeclared_schemas: on,
            filter_value_path_sub: on,
            schemas_optional: on,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_one_flag_and_strict_turns_each_off() {
        let mut seen = std::collections::HashSet::new();
        for name in Compat::NAMES {
            let mut c = Compat::default();
            let flag = c.flag_mut(name).expect("every name maps to a flag");
            assert!(*flag, "{name} is on by default");
            *flag = false;
            assert_ne!(c, Compat::default(), "{name} changes something");
            assert!(seen.insert(format!("{c:?}")), "{name} shares a flag");
            let mut s = Compat::strict();
            assert_eq!(s.flag_mut(name).map(|f| *f), Some(false), "{name} strict");
        }
        // Turning every named flag off is exactly strict: no flag is missing from NAMES.
        let mut c = Compat::default();
        for name in Compat::NAMES {
            if let Some(f) = c.flag_mut(name) {
                *f = false;
            }
        }
        assert_eq!(c, Compat::strict());
        assert!(Compat::default().flag_mut("no_such").is_none());
    }
}
