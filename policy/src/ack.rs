//! Inline acknowledgements: `-- safe_migrations:allow drop_column -- reason` lets a
//! reviewed exception through. The reason is required; the caller logs it.

const MARKER: &str = "safe_migrations:allow";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub rules: Vec<String>,
    /// None when the comment gave no reason (the acknowledgement then does not count).
    pub reason: Option<String>,
}

/// Every acknowledgement in the comments of `source`.
pub fn acknowledgements(source: &str) -> Vec<Acknowledgement> {
    crate::sql::comments(source)
        .into_iter()
        .filter_map(|comment| {
            let start = comment.find(MARKER)? + MARKER.len();
            let rest = &comment[start..];
            let (rules, reason) = match rest.find("--") {
                Some(split) => (&rest[..split], Some(rest[split + 2..].trim())),
                None => (rest, None),
            };
            let rules = rules
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|id| !id.is_empty())
                .map(str::to_ascii_lowercase)
                .collect();
            let reason = reason.filter(|r| !r.is_empty()).map(str::to_owned);
            Some(Acknowledgement { rules, reason })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rules_and_reason() {
        let acks = acknowledgements(
            "-- safe_migrations:allow drop_column, rename_column -- unused since v2\nALTER TABLE t DROP c;",
        );
        assert_eq!(
            acks,
            vec![Acknowledgement {
                rules: vec!["drop_column".into(), "rename_column".into()],
                reason: Some("unused since v2".into()),
            }]
        );
    }

    #[test]
    fn missing_reason_is_none() {
        let acks = acknowledgements("/* safe_migrations:allow truncate */ TRUNCATE t");
        assert_eq!(acks[0].reason, None);
    }

    #[test]
    fn marker_inside_a_string_is_not_an_acknowledgement() {
        assert!(acknowledgements("SELECT '-- safe_migrations:allow truncate -- x'").is_empty());
    }
}
