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
            "char" => "\"char\"",
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

/// Map a type name as written to the internal name Postgres stores. Parsers already
/// fold unquoted names to lower case and spell the SQL-standard ones (`integer`,
/// `character varying`) as pg_catalog names; the rest keep their case (a quoted
/// `"Money"` domain is not `money`).
fn canonical_name(name: &str) -> String {
    let canonical = match name {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "float" | "double precision" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        // Not "char": the parser writes CHAR(n) as bpchar, and "char" is the one-byte
        // internal type.
        "character" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        "bit varying" => "varbit",
        _ => return name.to_string(),
    };
    canonical.to_string()
}

/// How PostgreSQL converts a column's values from one type to another in ALTER COLUMN
/// TYPE (find_coercion_pathway): domains resolved to their base types, then pg_cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coercion {
    /// The old type's base type (the type itself unless it is a domain).
    pub from_base: TypeName,
    /// The new type's base type, with the domain's modifiers when it is a domain.
    pub to_base: TypeName,
    /// The base types are the same, or pg_cast says binary-coercible (castmethod `b`).
    pub binary: bool,
    /// The new type is a domain with constraints (its own or a base domain's): every
    /// row is checked against them.
    pub checks_domain: bool,
}

/// Types of pg_catalog that are not domains, for deciding without a catalog (the CLI).
const BUILTIN_TYPES: &[&str] = &[
    "bool",
    "bytea",
    "char",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "money",
    "text",
    "varchar",
    "bpchar",
    "name",
    "oid",
    "xml",
    "json",
    "jsonb",
    "uuid",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "bit",
    "varbit",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "point",
    "tsvector",
    "tsquery",
    "regclass",
    "regtype",
    "regproc",
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
];

/// pg_cast's binary-coercible casts between those types that an assignment may use
/// (castmethod `b`, castcontext `a` or `i`), as PostgreSQL 15 ships them.
const BINARY_CASTS: &[(&str, &str)] = &[
    ("bit", "varbit"),
    ("varbit", "bit"),
    ("cidr", "inet"),
    ("text", "bpchar"),
    ("text", "varchar"),
    ("varchar", "bpchar"),
    ("varchar", "text"),
    ("xml", "bpchar"),
    ("xml", "text"),
    ("xml", "varchar"),
    ("int4", "oid"),
    ("oid", "int4"),
    ("int4", "regclass"),
    ("regclass", "int4"),
    ("oid", "regclass"),
    ("regclass", "oid"),
    ("int4", "regtype"),
    ("regtype", "int4"),
    ("oid", "regtype"),
    ("regtype", "oid"),
    ("int4", "regproc"),
    ("regproc", "int4"),
    ("oid", "regproc"),
    ("regproc", "oid"),
];

impl TypeName {
    /// One of pg_catalog's types that columns mostly have, known to be no domain without
    /// asking a catalog.
    /// Could this name a domain (a user-defined type, not an array)? Only those are looked
    /// up in the catalog.
    pub fn may_be_domain(&self) -> bool {
        !self.array && !self.is_builtin() && !self.is_serial()
    }

    pub fn is_builtin(&self) -> bool {
        self.schema.is_none() && BUILTIN_TYPES.contains(&self.name.as_str())
    }
}

impl Coercion {
    /// The coercion between two built-in types, known without a catalog; None when
    /// either type may be something else (a domain, an extension's type).
    pub fn builtin(from: &TypeName, to: &TypeName) -> Option<Coercion> {
        if !from.is_builtin() || !to.is_builtin() {
            return None;
        }
        let binary = from.name == to.name && from.array == to.array
            || !from.array && !to.array && BINARY_CASTS.contains(&(from.name.as_str(), to.name.as_str()));
        Some(Coercion {
            from_base: from.clone(),
            to_base: to.clone(),
            binary,
            checks_domain: false,
        })
    }
}

/// Whether changing a column's type rewrites the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeChange {
    /// Catalog-only: no rewrite (dependent constraints and indexes aside).
    Free,
    /// Every row is rewritten under ACCESS EXCLUSIVE; the reason says why.
    Rewrite(String),
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

/// MAX_TIMESTAMP_PRECISION, MAX_TIME_PRECISION and MAX_INTERVAL_PRECISION: a precision
/// this high keeps every value as it is.
const MAX_PRECISION: i64 = 6;

/// Decide whether `old -> new` rewrites, as ATColumnChangeRequiresRewrite does after the
/// planner has simplified the conversion: a binary-coercible relabel is free, a length
/// coercion is free when its support function finds it a no-op (varchar, varbit, numeric,
/// timestamp, time and interval), timestamp <-> timestamptz is free when the session
/// TimeZone is UTC, a domain with constraints checks every row, anything else rewrites.
/// `coercion` is the catalog's answer (None: unknown, built-in types are known anyway);
/// `timezone` is the session TimeZone, when known.
pub fn type_change(old: &TypeName, new: &TypeName, coercion: Option<Coercion>, timezone: Option<&str>) -> TypeChange {
    if old == new {
        return TypeChange::Free;
    }
    let Some(coercion) = coercion.or_else(|| Coercion::builtin(old, new)) else {
        return TypeChange::Unknown(format!(
            "whether {old} converts to {new} without a rewrite depends on the catalog (domains, pg_cast), which \
             is not known here"
        ));
    };
    if coercion.checks_domain {
        return TypeChange::Rewrite(format!("{new} is a domain with constraints, checked against every row"));
    }
    let (from, to) = (&coercion.from_base, &coercion.to_base);
    let not_free = || TypeChange::Rewrite(format!("{old} to {new} is not a catalog-only change"));
    if from == to {
        return TypeChange::Free;
    }
    if from.array || to.array {
        return not_free();
    }
    // A length coercion's support function: is it a no-op from `old` modifiers to `new`?
    let widened_length = match (from.modifiers.first(), to.modifiers.first()) {
        (_, None) => true,
        (Some(o), Some(n)) => n >= o,
        (None, Some(_)) => false,
    };
    let kept_precision = match (from.precision(), to.precision()) {
        (_, None) => true,
        (_, Some(n)) if n >= MAX_PRECISION => true,
        (Some(o), Some(n)) => n >= o,
        (None, Some(_)) => false,
    };
    let free = if from.schema == to.schema && from.name == to.name {
        match from.name.as_str() {
            "varchar" | "varbit" if from.schema.is_none() => widened_length,
            "numeric" if from.schema.is_none() => match (from.modifiers.as_slice(), to.modifiers.as_slice()) {
                (_, []) => true,
                ([p, s], [q, t]) => q >= p && s == t,
                ([p], [q]) => q >= p,
                ([p], [q, 0]) | ([p, 0], [q]) => q >= p,
                _ => false,
            },
            "timestamp" | "timestamptz" | "time" | "timetz" if from.schema.is_none() => kept_precision,
            "interval" if from.schema.is_none() => {
                let same_range = from.modifiers.first() == to.modifiers.first() || to.modifiers.is_empty();
                same_range && kept_precision
            }
            // bpchar, bit and the rest: a different modifier runs the coercion on every row.
            _ => false,
        }
    } else if from.schema.is_none()
        && to.schema.is_none()
        && matches!(
            (from.name.as_str(), to.name.as_str()),
            ("timestamp", "timestamptz") | ("timestamptz", "timestamp")
        )
    {
        let to_precision_kept = to.precision().is_none_or(|n| n >= MAX_PRECISION);
        return match timezone {
            None => TypeChange::Unknown(format!(
                "{old} to {new} is free only when the session TimeZone is UTC, and the TimeZone is not known here"
            )),
            Some(zone) if is_utc_zone(zone) && to_precision_kept => TypeChange::Free,
            Some(zone) if is_utc_zone(zone) => not_free(),
            Some(zone) => TypeChange::Rewrite(format!(
                "{old} to {new} converts every value with the session TimeZone ({zone})"
            )),
        };
    } else {
        // A binary-coercible relabel is free; a modifier on the new type then runs its
        // length coercion on values whose length is not known.
        coercion.binary && to.modifiers.is_empty()
    };
    if free {
        TypeChange::Free
    } else {
        not_free()
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

    fn change(old: &TypeName, new: &TypeName, timezone: Option<&str>) -> TypeChange {
        type_change(old, new, None, timezone)
    }

    fn rewrites(change: TypeChange) -> bool {
        matches!(change, TypeChange::Rewrite(_))
    }

    #[test]
    fn varchar_widening_is_free_narrowing_rewrites() {
        let v50 = parsed(&["pg_catalog", "varchar"], &[50]);
        let v100 = parsed(&["pg_catalog", "varchar"], &[100]);
        assert_eq!(change(&v50, &v100, None), TypeChange::Free);
        assert!(rewrites(change(&v100, &v50, None)));
        assert_eq!(
            change(&v50, &parsed(&["pg_catalog", "varchar"], &[]), None),
            TypeChange::Free
        );
        assert_eq!(change(&v50, &parsed(&["text"], &[]), None), TypeChange::Free);
        assert!(rewrites(change(&parsed(&["text"], &[]), &v50, None)));
        assert_eq!(
            change(&parsed(&["text"], &[]), &parsed(&["pg_catalog", "varchar"], &[]), None),
            TypeChange::Free
        );
    }

    #[test]
    fn numeric_precision_up_same_scale_is_free() {
        let n10_2 = parsed(&["pg_catalog", "numeric"], &[10, 2]);
        assert_eq!(
            change(&n10_2, &parsed(&["pg_catalog", "numeric"], &[12, 2]), None),
            TypeChange::Free
        );
        assert!(rewrites(change(
            &n10_2,
            &parsed(&["pg_catalog", "numeric"], &[12, 3]),
            None
        )));
        assert_eq!(
            change(&n10_2, &parsed(&["pg_catalog", "numeric"], &[]), None),
            TypeChange::Free
        );
    }

    #[test]
    fn timestamp_to_timestamptz_depends_on_timezone() {
        let ts = parsed(&["pg_catalog", "timestamp"], &[]);
        let tstz = parsed(&["pg_catalog", "timestamptz"], &[]);
        assert_eq!(change(&ts, &tstz, Some("UTC")), TypeChange::Free);
        assert_eq!(change(&ts, &tstz, Some("Etc/UTC")), TypeChange::Free);
        assert!(rewrites(change(&ts, &tstz, Some("Europe/Berlin"))));
        assert!(matches!(change(&ts, &tstz, None), TypeChange::Unknown(_)));
        // The conversion function's result has no precision: a lower one rounds every value.
        assert!(rewrites(change(
            &ts,
            &parsed(&["pg_catalog", "timestamptz"], &[3]),
            Some("UTC")
        )));
    }

    #[test]
    fn precision_six_or_more_keeps_every_value() {
        let ts = parsed(&["pg_catalog", "timestamp"], &[]);
        assert_eq!(
            change(&ts, &parsed(&["pg_catalog", "timestamp"], &[6]), None),
            TypeChange::Free
        );
        assert!(rewrites(change(&ts, &parsed(&["pg_catalog", "timestamp"], &[3]), None)));
        assert_eq!(
            change(
                &parsed(&["pg_catalog", "time"], &[2]),
                &parsed(&["pg_catalog", "time"], &[4]),
                None
            ),
            TypeChange::Free
        );
    }

    #[test]
    fn integer_widening_rewrites() {
        assert!(rewrites(change(
            &parsed(&["pg_catalog", "int4"], &[]),
            &parsed(&["pg_catalog", "int8"], &[]),
            None
        )));
    }

    #[test]
    fn binary_coercible_casts_are_free_unless_a_length_applies() {
        assert_eq!(
            change(&parsed(&["cidr"], &[]), &parsed(&["inet"], &[]), None),
            TypeChange::Free
        );
        assert_eq!(
            change(
                &parsed(&["pg_catalog", "bit"], &[8]),
                &parsed(&["pg_catalog", "varbit"], &[]),
                None
            ),
            TypeChange::Free
        );
        assert!(rewrites(change(
            &parsed(&["pg_catalog", "bit"], &[8]),
            &parsed(&["pg_catalog", "varbit"], &[8]),
            None
        )));
        // bpchar to text strips trailing blanks: a function, not a relabel.
        assert!(rewrites(change(
            &parsed(&["pg_catalog", "bpchar"], &[5]),
            &parsed(&["text"], &[]),
            None
        )));
        assert!(rewrites(change(
            &parsed(&["pg_catalog", "bpchar"], &[5]),
            &parsed(&["pg_catalog", "bpchar"], &[10]),
            None
        )));
    }

    #[test]
    fn types_outside_pg_catalog_need_the_catalog() {
        let text = parsed(&["text"], &[]);
        let citext = parsed(&["citext"], &[]);
        assert!(matches!(change(&text, &citext, None), TypeChange::Unknown(_)));
        let from_pg_cast = Coercion {
            from_base: text.clone(),
            to_base: citext.clone(),
            binary: true,
            checks_domain: false,
        };
        assert_eq!(
            type_change(&text, &citext, Some(from_pg_cast.clone()), None),
            TypeChange::Free
        );
        let email = parsed(&["email"], &[]);
        let checked = Coercion {
            to_base: text.clone(),
            checks_domain: true,
            ..from_pg_cast.clone()
        };
        assert_eq!(
            type_change(&text, &email, Some(checked), None),
            TypeChange::Rewrite("email is a domain with constraints, checked against every row".into())
        );
        let short = Coercion {
            to_base: parsed(&["pg_catalog", "varchar"], &[20]),
            binary: true,
            ..from_pg_cast
        };
        assert!(rewrites(type_change(
            &text,
            &parsed(&["short_name"], &[]),
            Some(short),
            None
        )));
    }

    #[test]
    fn quoted_names_keep_their_case() {
        assert_eq!(parsed(&["Money"], &[]).name, "Money");
        assert_eq!(parsed(&["pg_catalog", "integer"], &[]).name, "int4");
    }

    #[test]
    fn sql_spelling() {
        assert_eq!(parsed(&["pg_catalog", "numeric"], &[10, 2]).sql(), "numeric(10,2)");
        assert_eq!(parsed(&["pg_catalog", "int8"], &[]).sql(), "bigint");
    }
}
