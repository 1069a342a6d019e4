//! STUB: to be written.

use super::{Category, Rule, Scope};
use crate::finding::Finding;
use crate::model::Statement;

pub const RULE: Rule = Rule {
    id: "detach_partition_non_concurrently",
    category: Category::Lock,
    summary: "",
    check,
};

fn check(_: &Statement, _: &Scope) -> Vec<Finding> {
    vec![]
}
