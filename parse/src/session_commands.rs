//! Session and transaction commands: BEGIN / COMMIT / SAVEPOINT ..., SET / RESET,
//! DISCARD.

use pg_query::protobuf::{self, DiscardMode, TransactionStmtKind, VariableSetKind};
use pg_query::NodeEnum;
use policy::model::{SetSetting, SettingChange, TransactionKind};
use policy::Stmt;

use super::options;

pub fn transaction(transaction: &protobuf::TransactionStmt) -> Stmt {
    use TransactionStmtKind::*;
    let kind = match transaction.kind() {
        TransStmtBegin | TransStmtStart | Undefined => TransactionKind::Begin,
        TransStmtCommit => TransactionKind::Commit,
        TransStmtRollback => TransactionKind::Rollback,
        TransStmtSavepoint => TransactionKind::Savepoint(transaction.savepoint_name.clone()),
        TransStmtRelease => TransactionKind::Release(transaction.savepoint_name.clone()),
        TransStmtRollbackTo => TransactionKind::RollbackToSavepoint(transaction.savepoint_name.clone()),
        TransStmtPrepare => TransactionKind::Prepare,
        TransStmtCommitPrepared => TransactionKind::CommitPrepared,
        TransStmtRollbackPrepared => TransactionKind::RollbackPrepared,
    };
    Stmt::Transaction(kind)
}

pub fn set(set: &protobuf::VariableSetStmt) -> Stmt {
    let name = Some(set.name.to_ascii_lowercase());
    let setting = match set.kind() {
        VariableSetKind::VarSetValue => SetSetting {
            name,
            value: Some(value_text(&set.args)),
            local: set.is_local,
        },
        VariableSetKind::VarSetMulti => SetSetting {
            name,
            value: Some(multi_text(&set.args)),
            local: set.is_local,
        },
        VariableSetKind::VarResetAll => SetSetting {
            name: None,
            value: None,
            local: false,
        },
        // SET ... TO DEFAULT, SET ... FROM CURRENT, RESET ...
        _ => SetSetting {
            name,
            value: None,
            local: set.is_local,
        },
    };
    Stmt::Set(setting)
}

/// The stored setting an ALTER ROLE / DATABASE / SYSTEM ... SET or RESET changes.
pub fn stored_setting(node: &NodeEnum) -> Option<SettingChange> {
    let (target, set) = match node {
        NodeEnum::AlterRoleSetStmt(alter) => ("ALTER ROLE", alter.setstmt.as_ref()?),
        NodeEnum::AlterDatabaseSetStmt(alter) => ("ALTER DATABASE", alter.setstmt.as_ref()?),
        NodeEnum::AlterSystemStmt(alter) => ("ALTER SYSTEM", alter.setstmt.as_ref()?),
        _ => return None,
    };
    let name = match set.kind() {
        VariableSetKind::VarResetAll => None,
        _ => Some(set.name.to_ascii_lowercase()),
    };
    Some(SettingChange::Stored {
        target: target.to_string(),
        name,
    })
}

/// The value list as Postgres shows it: constants unquoted, joined with ", ".
fn value_text(args: &[protobuf::Node]) -> String {
    args.iter()
        .filter_map(options::constant_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// SET TRANSACTION / SET SESSION CHARACTERISTICS: `option value` items.
fn multi_text(args: &[protobuf::Node]) -> String {
    args.iter()
        .filter_map(|node| match node.node.as_ref()? {
            NodeEnum::DefElem(elem) => {
                let value = elem.arg.as_deref().and_then(options::constant_text).unwrap_or_default();
                Some(format!("{} {value}", elem.defname).trim_end().to_string())
            }
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn discard(discard: &protobuf::DiscardStmt) -> Stmt {
    Stmt::Discard {
        all: discard.target() == DiscardMode::DiscardAll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;

    fn setting(sql: &str) -> SetSetting {
        match stmt(sql) {
            Stmt::Set(setting) => setting,
            other => panic!("{other:?}"),
        }
    }

    fn set(name: Option<&str>, value: Option<&str>, local: bool) -> SetSetting {
        SetSetting {
            name: name.map(str::to_owned),
            value: value.map(str::to_owned),
            local,
        }
    }

    #[test]
    fn transaction_control() {
        let kind = |sql: &str| match stmt(sql) {
            Stmt::Transaction(kind) => kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(kind("BEGIN"), TransactionKind::Begin);
        assert_eq!(
            kind("START TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            TransactionKind::Begin
        );
        assert_eq!(kind("COMMIT"), TransactionKind::Commit);
        assert_eq!(kind("END"), TransactionKind::Commit);
        assert_eq!(kind("ROLLBACK"), TransactionKind::Rollback);
        assert_eq!(kind("ABORT"), TransactionKind::Rollback);
        assert_eq!(kind("SAVEPOINT s1"), TransactionKind::Savepoint("s1".into()));
        assert_eq!(kind("RELEASE SAVEPOINT s1"), TransactionKind::Release("s1".into()));
        assert_eq!(
            kind("ROLLBACK TO \"S1\""),
            TransactionKind::RollbackToSavepoint("S1".into())
        );
        assert_eq!(kind("PREPARE TRANSACTION 'x'"), TransactionKind::Prepare);
        assert_eq!(kind("COMMIT PREPARED 'x'"), TransactionKind::CommitPrepared);
        assert_eq!(kind("ROLLBACK PREPARED 'x'"), TransactionKind::RollbackPrepared);
    }

    #[test]
    fn set_and_reset() {
        assert_eq!(
            setting("SET lock_timeout = '5s'"),
            set(Some("lock_timeout"), Some("5s"), false)
        );
        assert_eq!(
            setting("SET LOCAL lock_timeout TO 3000"),
            set(Some("lock_timeout"), Some("3000"), true)
        );
        assert_eq!(
            setting("SET SESSION statement_timeout = 0"),
            set(Some("statement_timeout"), Some("0"), false)
        );
        assert_eq!(
            setting("SET search_path TO app, public"),
            set(Some("search_path"), Some("app, public"), false)
        );
        assert_eq!(
            setting("SET TIME ZONE 'UTC'"),
            set(Some("timezone"), Some("UTC"), false)
        );
        assert_eq!(
            setting("SET lock_timeout TO DEFAULT"),
            set(Some("lock_timeout"), None, false)
        );
        assert_eq!(setting("RESET lock_timeout"), set(Some("lock_timeout"), None, false));
        assert_eq!(setting("RESET ALL"), set(None, None, false));
        assert_eq!(
            setting("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            set(Some("transaction"), Some("transaction_isolation serializable"), false)
        );
    }

    #[test]
    fn discard() {
        assert_eq!(stmt("DISCARD ALL"), Stmt::Discard { all: true });
        assert_eq!(stmt("DISCARD PLANS"), Stmt::Discard { all: false });
    }
}
