//! A guarded role cannot change its own safe_migrations settings: not for the session
//! (SET, RESET, `set_config`, also with a name computed at run time, which could be
//! one), not stored for a role, a database or the server (ALTER ROLE / DATABASE / SYSTEM
//! ... SET or RESET, RESET ALL among them, which removes them too). With the extension
//! the settings are superuser-only and PostgreSQL refuses this itself; through the proxy
//! they are placeholders any role may set, so the rule holds the same line there. A
//! superuser may, as PostgreSQL lets it. Decided from the parsed statement: a comment or
//! a string that only mentions a setting changes nothing. `Category::Policy`: never
//! acknowledged by comment (the comment would be written by the role it binds), and
//! refused in warn mode too, as PostgreSQL's own permission check is.

use super::{Category, Rule, Scope};
use crate::finding::Finding;
use crate::model::{SettingChange, Statement, Stmt};

pub const RULE: Rule = Rule {
    id: "policy_change",
    category: Category::Policy,
    summary:
        "a guarded role cannot change its safe_migrations settings (SET, set_config, ALTER ROLE / DATABASE ... SET)",
    check,
};

/// SQLSTATE insufficient_privilege, as PostgreSQL refuses a superuser-only setting.
pub const SQLSTATE_INSUFFICIENT_PRIVILEGE: &str = "42501";

const PREFIX: &str = "safe_migrations.";

fn is_policy(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with(PREFIX)
}

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let mut changes: Vec<String> = Vec::new();
    if let Stmt::Set(set) = &statement.stmt {
        if let Some(name) = set.name.as_deref().filter(|name| is_policy(name)) {
            changes.push(match set.value {
                Some(_) => format!("SET {name}"),
                None => format!("RESET {name}"),
            });
        }
    }
    for change in &statement.changes {
        match change {
            SettingChange::SetConfig(name) if is_policy(name) => changes.push(format!("set_config of {name}")),
            SettingChange::SetConfigComputed => {
                changes.push("set_config of a setting whose name is computed when it runs".to_string())
            }
            SettingChange::Stored {
                target,
                name: Some(name),
            } if is_policy(name) => changes.push(format!("{target} ... SET/RESET {name}")),
            SettingChange::Stored { target, name: None } => changes.push(format!(
                "{target} ... RESET ALL, which removes the stored safe_migrations settings too"
            )),
            _ => {}
        }
    }
    if changes.is_empty() || scope.catalog.is_superuser() == Some(true) {
        return Vec::new();
    }
    vec![Finding::new(
        RULE.id,
        SQLSTATE_INSUFFICIENT_PRIVILEGE,
        None,
        "a guarded role cannot change its safe_migrations settings",
        format!("{} would change the policy that guards this role.", changes.join("; ")),
        "An administrator changes a role's policy: ALTER ROLE ... SET safe_migrations.<setting> as a superuser, \
         or the proxy's config file.",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SetSetting;
    use crate::rules::testing::*;

    fn set(name: &str, value: Option<&str>) -> Stmt {
        Stmt::Set(SetSetting {
            name: Some(name.to_string()),
            value: value.map(str::to_owned),
            local: false,
        })
    }

    fn with_changes(changes: Vec<SettingChange>) -> Statement {
        Statement {
            changes,
            ..statement(Stmt::Query, "")
        }
    }

    fn check_statement(statement: &Statement, catalog: &TestCatalog) -> Vec<Finding> {
        let settings = enforce();
        let context = crate::model::Context::default();
        (RULE.check)(statement, &Scope::new(&context, catalog, &settings))
    }

    #[test]
    fn set_reset_set_config_and_stored_settings_of_the_policy() {
        let catalog = TestCatalog::default();
        for statement in [
            statement(set("safe_migrations.mode", Some("off")), ""),
            statement(set("safe_migrations.allow", None), ""),
            with_changes(vec![SettingChange::SetConfig("safe_migrations.mode".into())]),
            with_changes(vec![SettingChange::SetConfigComputed]),
            with_changes(vec![SettingChange::Stored {
                target: "ALTER ROLE".into(),
                name: Some("safe_migrations.lock_timeout".into()),
            }]),
            with_changes(vec![SettingChange::Stored {
                target: "ALTER DATABASE".into(),
                name: None,
            }]),
        ] {
            let found = check_statement(&statement, &catalog);
            assert_eq!(found.len(), 1, "{statement:?}");
            assert_eq!(found[0].sqlstate, "42501");
            assert!(found[0].lock.is_none());
        }
        let finding = &check_statement(&statement(set("safe_migrations.mode", Some("off")), ""), &catalog)[0];
        assert_eq!(
            finding.text(),
            "policy_change: a guarded role cannot change its safe_migrations settings"
        );
        assert_eq!(
            finding.detail,
            "SET safe_migrations.mode would change the policy that guards this role."
        );
    }

    #[test]
    fn warn_mode_and_acknowledgements_do_not_soften_it() {
        let catalog = TestCatalog::default();
        let warn = crate::settings::Settings {
            mode: crate::settings::Mode::Warn,
            ..crate::settings::Settings::default()
        };
        let acknowledged = statement(
            set("safe_migrations.mode", Some("off")),
            "-- safe_migrations:allow policy_change -- because\nSET safe_migrations.mode = off",
        );
        for settings in [warn, enforce()] {
            let decision = crate::rules::decide(&acknowledged, &Default::default(), &settings, &catalog);
            assert_eq!(
                decision.rejection().map(|f| f.rule),
                Some("policy_change"),
                "{settings:?}"
            );
        }
    }

    #[test]
    fn other_settings_and_superusers_pass() {
        let catalog = TestCatalog::default();
        for statement in [
            statement(set("lock_timeout", Some("0")), ""),
            // Only mentioned, in a comment or a string: nothing changes.
            statement(
                Stmt::Query,
                "SELECT 'safe_migrations.mode' -- set_config('safe_migrations.mode')",
            ),
            with_changes(vec![SettingChange::SetConfig("work_mem".into())]),
            with_changes(vec![SettingChange::Stored {
                target: "ALTER ROLE".into(),
                name: Some("search_path".into()),
            }]),
        ] {
            assert!(check_statement(&statement, &catalog).is_empty(), "{statement:?}");
        }
        let superuser = TestCatalog {
            superuser: Some(true),
            ..TestCatalog::default()
        };
        assert!(check_statement(&statement(set("safe_migrations.mode", Some("off")), ""), &superuser).is_empty());
    }
}
