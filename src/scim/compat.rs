//! Client dialects: the deviations from RFC 7643/7644 that real clients (Microsoft Entra ID,
//! Okta) send, each a named switch. All are on by default; `Compat::strict()` turns them all
//! off for conformance testing. The PATCH engine and validator consult these flags only here
//! by name, so every tolerance is visible in one place. Pure.

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
    /// create the element instead of answering `noTarget`.
    pub create_on_filtered_path: bool,
    /// Some clients carry the resource's own `id` (or other readOnly attributes) in a no-path
    /// `replace` value: ignore them instead of answering `mutability`.
    pub ignore_read_only_in_patch: bool,
    /// Entra ID sets the enterprise `manager` to a bare id string
    /// (`"path": "urn:...:enterprise:2.0:User:manager", "value": "26118915-..."`): read a string
    /// given for a singular complex attribute that has a `value` sub-attribute as
    /// `{"value": ...}`.
    pub complex_value_from_string: bool,
}

impl Default for Compat {
    fn default() -> Compat {
        Compat {
            boolean_strings: true,
            op_case_insensitive: true,
            remove_members_by_value: true,
            dotted_keys: true,
            create_on_filtered_path: true,
            ignore_read_only_in_patch: true,
            complex_value_from_string: true,
        }
    }
}

impl Compat {
    /// Every tolerance by name (per-tenant settings and the admin commands use these).
    pub const NAMES: &'static [&'static str] = &[
        "boolean_strings",
        "op_case_insensitive",
        "remove_members_by_value",
        "dotted_keys",
        "create_on_filtered_path",
        "ignore_read_only_in_patch",
        "complex_value_from_string",
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
            _ => return None,
        })
    }

    /// Everything by the letter of the RFCs.
    pub fn strict() -> Compat {
        Compat {
            boolean_strings: false,
            op_case_insensitive: false,
            remove_members_by_value: false,
            dotted_keys: false,
            create_on_filtered_path: false,
            ignore_read_only_in_patch: false,
            complex_value_from_string: false,
        }
    }
}
