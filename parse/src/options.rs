//! Option lists (`VACUUM (FULL, ANALYZE)`, `REINDEX (CONCURRENTLY)`, `SET x = ...`): the
//! DefElem and constant nodes they are made of.

use pg_query::protobuf::{a_const, DefElem, Node};
use pg_query::NodeEnum;

/// Is option `name` in the list and switched on (`FULL`, `FULL true`, `FULL on`)?
pub fn enabled(options: &[Node], name: &str) -> bool {
    options.iter().any(|option| match option.node.as_ref() {
        Some(NodeEnum::DefElem(elem)) if elem.defname.eq_ignore_ascii_case(name) => is_on(elem),
        _ => false,
    })
}

/// A boolean option's value; an option written without a value is on.
fn is_on(elem: &DefElem) -> bool {
    match elem.arg.as_deref() {
        None => true,
        Some(value) => constant_text(value).is_none_or(|text| {
            !matches!(
                text.to_ascii_lowercase().as_str(),
                "false" | "off" | "no" | "0" | "f" | "n"
            )
        }),
    }
}

/// A constant (or identifier) as text: `'5s'` -> 5s, `5000` -> 5000, `on` -> on.
pub fn constant_text(node: &Node) -> Option<String> {
    match node.node.as_ref()? {
        NodeEnum::AConst(constant) => match constant.val.as_ref()? {
            a_const::Val::Ival(value) => Some(value.ival.to_string()),
            a_const::Val::Fval(value) => Some(value.fval.clone()),
            a_const::Val::Boolval(value) => Some(value.boolval.to_string()),
            a_const::Val::Sval(value) => Some(value.sval.clone()),
            a_const::Val::Bsval(value) => Some(value.bsval.clone()),
        },
        NodeEnum::String(value) => Some(value.sval.clone()),
        NodeEnum::Integer(value) => Some(value.ival.to_string()),
        NodeEnum::Float(value) => Some(value.fval.clone()),
        NodeEnum::Boolean(value) => Some(value.boolval.to_string()),
        NodeEnum::TypeCast(cast) => cast.arg.as_deref().and_then(constant_text),
        _ => None,
    }
}
