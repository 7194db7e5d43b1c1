//! Which SCIM attributes `resources` keeps in columns of their own (the rest are rows of
//! `attr_values`, by canonical path). The protocol layer names attributes; this is the one
//! place that maps them to columns.

use crate::scim::schema::Rtype;

/// A column of `resources` that answers for an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Id,
    ExternalId,
    /// Lower-cased (`userName` is case-insensitive, RFC 7643 §4.1.1).
    UserName,
    /// Lower-cased (`displayName` is case-insensitive).
    DisplayName,
    Active,
    Created,
    Modified,
    ResourceType,
}

/// The column of a top-level attribute path (`Field::Attr`), if it has one.
pub fn column_of(rt: Rtype, path: &str) -> Option<Column> {
    Some(match path {
        "id" => Column::Id,
        "externalid" => Column::ExternalId,
        "username" if rt == Rtype::User => Column::UserName,
        "displayname" => Column::DisplayName,
        "active" if rt == Rtype::User => Column::Active,
        "meta.created" => Column::Created,
        "meta.lastmodified" => Column::Modified,
        "meta.resourcetype" => Column::ResourceType,
        _ => return None,
    })
}

impl Column {
    pub fn name(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::ExternalId => "external_id",
            Column::UserName => "user_name_ci",
            Column::DisplayName => "display_ci",
            Column::Active => "active",
            Column::Created => "created",
            Column::Modified => "modified",
            Column::ResourceType => "rtype",
        }
    }

    /// Whether the column holds text (empty text counts as absent for `pr`).
    pub fn is_text(self) -> bool {
        !matches!(self, Column::Active | Column::Created | Column::Modified)
    }

    /// The expression a list is sorted by, over `resources r` (`active` by the text of its
    /// value: `false` before `true`).
    pub fn sort_expr(self) -> &'static str {
        match self {
            Column::Active => "(CASE WHEN r.active THEN 'true' WHEN NOT r.active THEN 'false' END)",
            Column::Id => "r.id",
            Column::ExternalId => "r.external_id",
            Column::UserName => "r.user_name_ci",
            Column::DisplayName => "r.display_ci",
            Column::Created => "r.created",
            Column::Modified => "r.modified",
            Column::ResourceType => "r.rtype",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_top_level_kept_attributes_have_columns() {
        assert_eq!(column_of(Rtype::User, "username"), Some(Column::UserName));
        assert_eq!(column_of(Rtype::Group, "username"), None);
        assert_eq!(column_of(Rtype::Group, "active"), None);
        assert_eq!(
            column_of(Rtype::Group, "meta.lastmodified"),
            Some(Column::Modified)
        );
        for path in ["emails.value", "name.familyname", "title", "meta.location"] {
            assert_eq!(column_of(Rtype::User, path), None, "{path}");
        }
    }
}
