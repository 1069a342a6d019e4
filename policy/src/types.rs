//! Column types in one canonical form, from a parse tree or from the catalog, and the
//! question `change_column_type` asks: does going from one to the other rewrite the table?

/// A column type: canonical internal name (`varchar`, `int4`, `timestamptz`), its
/// modifiers in declaration order (`numeric(10,2)` -> [10, 2]) and whether it is an array.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TypeName {
    /// Schema for types outside pg_catalog, as written or as stored.
    pub schema: Option<String>,
    pub name: String,
    pub modifiers: Vec<i64>,
    pub array: bool,
}

/// `interval`'s range mask meaning "no field restriction" (INTERVAL_FULL_RANGE).
const INTERVAL_FULL_RANGE: i64 = 0x7FFF;
/// `interval`'s precision meaning "unconstrained" (INTERVAL_FULL_PRECISION).
const INTERVAL_FULL_PRECISION: i64 = 0xFFFF;
/// VARHDRSZ, added to character and numeric typmods.
const VARHDRSZ: i64 = 4;

impl TypeName {
    /// From a parse tree: the name parts as written (`["pg_catalog", "varchar"]`,
    /// `["text"]`, `["public", "mood"]`) and the integer modifiers.
    pub fn from_parts(names: &[&str], modifiers: Vec<i64>, array: bool) -> TypeName {
        let (schema, name) = match names {
            [] => (None, String::new()),
            [name] => (None, canonical_name(name)),
            [.., schema, name] if schema.eq_ignore_ascii_case("pg_catalog") => (None, canonical_name(name)),
            [.., schema, name] => (Some(schema.to_string()), name.to_string()),
        };
        let modifiers = if name == "interval" && modifiers.len() == 1 && modifiers[0] == INTERVAL_FULL_RANGE {
            Vec::new()
        } else {
            modifiers
        };
        TypeName {
            schema,
            name,
            modifiers,
            array,
        }
    }

    /// From the catalog: pg_type.typname of the element type (schema when not
    /// pg_catalog), pg_attribute.atttypmod, and whether the column is an array.
    pub fn from_catalog(schema: Option<&str>, typname: &str, typmod: i32, array: bool) -> TypeName {
        let typmod = i64::from(typmod);
        let name = canonical_name(typname);
        let modifiers = if typmod < 0 {
            Vec::new()
        } else {
            match name.as_str() {
                "varchar" | "bpchar" => vec![typmod - VARHDRSZ],
                "numeric" => {
                    let packed = typmod - VARHDRSZ;
                    let precision = (packed >> 16) & 0xFFFF;
                    // PG15 stores the scale as an 11-bit signed number.
                    let scale = ((packed & 0x7FF) ^ 1024) - 1024;
                    vec![precision, scale]
                }
                "interval" => {
                    let range = (typmod >> 16) & 0x7FFF;
                    let precision = typmod & 0xFFFF;
                    match (range == INTERVAL_FULL_RANGE, precision == INTERVAL_FULL_PRECISION) {
                        (true, true) => Vec::new(),
                        (_, true) => vec![range],
                        (_, false) => vec![range, precision],
                    }
                }
                _ => vec![typmod],
            }
        };
        TypeName {
            schema: schema.filter(|s| *s != "pg_catalog").map(str::to_owned),
            name,
            modifiers,
            array,
        }
    }

    /// The type as SQL, in the spelling users write.
    pub fn sql(&self) -> String {
        let base = match self.name.as_str() {
            "varchar" => "varchar",
            "bpchar" => "char",
            "int2" => "smallint",
            "int4" => "integer",
            "int8" => "bigint",
            "float4" => "real",
            "float8" => "double precision",
            "bool" => "boolean",
            "timestamptz" => "timestamptz",
            other => other,
        };
        let mut out = match &self.schema {
            Some(schema) => format!("{}.{}", crate::sql::ident(schema), crate::sql::ident(base)),
            None => base.to_string(),
        };
        let mods: Vec<i64> = if self.name == "interval" {
            // [range, precision]: only the precision is written in parentheses.
            self.modifiers.get(1).copied().into_iter().collect()
        } else {
            self.modifiers.clone()
        };
        if !mods.is_empty() {
            let list: Vec<String> = mods.iter().map(i64::to_string).collect();
            out.push_str(&format!("({})", list.join(",")));
        }
        if self.array {
            out.push_str("[]");
        }
        out
    }

    /// `serial`, `bigserial`, `smallserial` (and their numbered spellings).
    pub fn is_serial(&self) -> bool {
        self.schema.is_none()
            && matches!(
                self.name.as_str(),
                "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
            )
    }

    pub fn is_json(&self) -> bool {
        self.schema.is_none() && self.name == "json"
    }

    /// Precision modifier for time-like types and interval, None = unconstrained.
    fn precision(&self) -> Option<i64> {
        if self.name == "interval" {
            self.modifiers.get(1).copied()
        } else {
            self.modifiers.first().copied()
        }
    }
}

impl std::fmt::Display for TypeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql())
    }
}

/// Map a single-word type name to the internal name Postgres stores.
fn canonical_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "float" | "double precision" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        "bit varying" => "varbit",
        _ => return lower,
    };
    canonical.to_string()
}

/// Whether changing a column's type rewrites (or re-checks) the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeChange {
    /// Catalog-only: no rewrite, no scan.
    Free,
    /// Every row is rewritten under ACCESS EXCLUSIVE.
    Rewrite,
    /// Cannot be decided without a fact we do not have; the reason says which.
    Unknown(String),
}

/// Session time zones whose UTC offset is always 0 (timestamp <-> timestamptz is free there).
fn is_utc_zone(zone: &str) -> bool {
    let zone = zone.trim().to_ascii_lowercase();
    let zone = zone.strip_prefix("etc/").unwrap_or(&zone);
    matches!(
        zone,
        "utc" | "uct" | "gmt" | "gmt0" | "gmt+0" | "gmt-0" | "greenwich" | "universal" | "zulu" | "z"
    )
}

/// Decide whether `old -> new` is one of the changes Postgres does without a rewrite.
/// `timezone` is the session TimeZone, when known.
pub fn type_change(old: &TypeName, new: &TypeName, timezone: Option<&str>) -> TypeChange {
    if old == new {
        return TypeChange::Free;
    }
    if old.array != new.array || old.array || old.schema.is_some() || new.schema.is_some() {
        return TypeChange::Rewrite;
    }
    let widened_length = |old: &TypeName, new: &TypeName| match (old.modifiers.first(), new.modifiers.first()) {
        (_, None) => true,
        (Some(o), Some(n)) => n >= o,
        (None, Some(_)) => false,
    };
    let higher_precision = |old: &TypeName, new: &TypeName| match (old.precision(), new.precision()) {
        (_, None) => true,
        (Some(o), Some(n)) => n >= o,
        (None, Some(_)) => false,
    };
    match (old.name.as_str(), new.name.as_str()) {
        ("varchar", "varchar") | ("varbit", "varbit") => free_if(widened_length(old, new)),
        ("varchar", "text") => TypeChange::Free,
        ("text", "varchar") => free_if(new.modifiers.is_empty()),
        ("numeric", "numeric") => free_if(match (old.modifiers.as_slice(), new.modifiers.as_slice()) {
            (_, []) => true,
            ([p, s], [q, t]) => q >= p && s == t,
            ([p], [q]) => q >= p,
            ([p], [q, 0]) | ([p, 0], [q]) => q >= p,
            _ => false,
        }),
        ("timestamp", "timestamp") | ("timestamptz", "timestamptz") | ("time", "time") | ("timetz", "timetz") => {
            free_if(higher_precision(old, new))
        }
        ("interval", "interval") => {
            let same_range = old.modifiers.first() == new.modifiers.first() || new.modifiers.is_empty();
            free_if(same_range && higher_precision(old, new))
        }
        ("timestamp", "timestamptz") | ("timestamptz", "timestamp") => match timezone {
            None => TypeChange::Unknown(format!(
                "{} to {} is free only when the session TimeZone is UTC, and the TimeZone is not known here",
                old.sql(),
                new.sql()
            )),
            Some(zone) if is_utc_zone(zone) && higher_precision(old, new) => TypeChange::Free,
            Some(_) => TypeChange::Rewrite,
        },
        ("cidr", "inet") => TypeChange::Free,
        _ => TypeChange::Rewrite,
    }
}

fn free_if(free: bool) -> TypeChange {
    if free {
        TypeChange::Free
    } else {
        TypeChange::Rewrite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(names: &[&str], mods: &[i64]) -> TypeName {
        TypeName::from_parts(names, mods.to_vec(), false)
    }

    #[test]
    fn parse_and_catalog_forms_agree() {
        assert_eq!(
            parsed(&["pg_catalog", "varchar"], &[50]),
            TypeName::from_catalog(Some("pg_catalog"), "varchar", 54, false)
        );
        assert_eq!(
            parsed(&["pg_catalog", "numeric"], &[10, 2]),
            TypeName::from_catalog(None, "numeric", ((10 << 16) | 2) + 4, false)
        );
        assert_eq!(parsed(&["text"], &[]), TypeName::from_catalog(None, "text", -1, false));
        assert_eq!(
            parsed(&["pg_catalog", "interval"], &[INTERVAL_FULL_RANGE]),
            TypeName::from_catalog(None, "interval", -1, false)
        );
        assert_eq!(
            parsed(&["pg_catalog", "interval"], &[INTERVAL_FULL_RANGE, 3]),
            TypeName::from_catalog(None, "interval", ((INTERVAL_FULL_RANGE << 16) | 3) as i32, false)
        );
    }

    #[test]
    fn varchar_widening_is_free_narrowing_rewrites() {
        let v50 = parsed(&["pg_catalog", "varchar"], &[50]);
        let v100 = parsed(&["pg_catalog", "varchar"], &[100]);
        assert_eq!(type_change(&v50, &v100, None), TypeChange::Free);
        assert_eq!(type_change(&v100, &v50, None), TypeChange::Rewrite);
        assert_eq!(
            type_change(&v50, &parsed(&["pg_catalog", "varchar"], &[]), None),
            TypeChange::Free
        );
        assert_eq!(type_change(&v50, &parsed(&["text"], &[]), None), TypeChange::Free);
        assert_eq!(type_change(&parsed(&["text"], &[]), &v50, None), TypeChange::Rewrite);
    }

    #[test]
    fn numeric_precision_up_same_scale_is_free() {
        let n10_2 = parsed(&["pg_catalog", "numeric"], &[10, 2]);
        assert_eq!(
            type_change(&n10_2, &parsed(&["pg_catalog", "numeric"], &[12, 2]), None),
            TypeChange::Free
        );
        assert_eq!(
            type_change(&n10_2, &parsed(&["pg_catalog", "numeric"], &[12, 3]), None),
            TypeChange::Rewrite
        );
        assert_eq!(
            type_change(&n10_2, &parsed(&["pg_catalog", "numeric"], &[]), None),
            TypeChange::Free
        );
    }

    #[test]
    fn timestamp_to_timestamptz_depends_on_timezone() {
        let ts = parsed(&["pg_catalog", "timestamp"], &[]);
        let tstz = parsed(&["pg_catalog", "timestamptz"], &[]);
        assert_eq!(type_change(&ts, &tstz, Some("UTC")), TypeChange::Free);
        assert_eq!(type_change(&ts, &tstz, Some("Etc/UTC")), TypeChange::Free);
        assert_eq!(type_change(&ts, &tstz, Some("Europe/Berlin")), TypeChange::Rewrite);
        assert!(matches!(type_change(&ts, &tstz, None), TypeChange::Unknown(_)));
    }

    #[test]
    fn integer_widening_rewrites() {
        assert_eq!(
            type_change(
                &parsed(&["pg_catalog", "int4"], &[]),
                &parsed(&["pg_catalog", "int8"], &[]),
                None
            ),
            TypeChange::Rewrite
        );
    }

    #[test]
    fn cidr_to_inet_is_free() {
        assert_eq!(
            type_change(&parsed(&["cidr"], &[]), &parsed(&["inet"], &[]), None),
            TypeChange::Free
        );
    }

    #[test]
    fn sql_spelling() {
        assert_eq!(parsed(&["pg_catalog", "numeric"], &[10, 2]).sql(), "numeric(10,2)");
        assert_eq!(parsed(&["pg_catalog", "int8"], &[]).sql(), "bigint");
    }
}
