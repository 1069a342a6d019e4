//! A role's policy, parsed from the same strings a GUC (`safe_migrations.mode`) or a
//! config file holds. A bad value is an error naming the setting and what it accepts.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The guard does nothing for this role.
    #[default]
    Off,
    /// Findings are reported as warnings; statements run.
    Warn,
    /// Error-level findings stop the statement.
    Enforce,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }
}

/// What the proxy does with a statement it cannot parse for a guarded role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unparsable {
    #[default]
    Reject,
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    /// Upper bound for lock_timeout while a guarded DDL statement runs, in ms; 0 = no cap.
    pub lock_timeout_cap_ms: u64,
    /// Rule ids not enforced for this role.
    pub allow: BTreeSet<String>,
    /// Are inline `-- safe_migrations:allow <rule> -- <reason>` comments honoured?
    pub acknowledgements: bool,
    /// Lock rules do not apply to tables with fewer estimated rows; 0 = always apply.
    pub min_table_rows: u64,
    /// Proxy only: statements that do not parse.
    pub unparsable: Unparsable,
    /// An UPDATE, DELETE or MERGE the planner expects to change more rows than this is an
    /// unbatched backfill; 0 = no limit.
    pub max_rows_per_statement: u64,
    /// A guarded transaction may hold a lock that blocks reads or writes of an existing
    /// table this long (ms) before it is ended; 0 = no limit.
    pub max_lock_hold_ms: u64,
    /// A guarded statement whose lock wait reaches the cap is tried again this many times.
    pub lock_retries: u32,
    /// The pause before the first retry (ms); each next one doubles, jittered.
    pub lock_retry_delay_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Off,
            lock_timeout_cap_ms: DEFAULT_LOCK_TIMEOUT_CAP_MS,
            allow: BTreeSet::new(),
            acknowledgements: true,
            min_table_rows: 0,
            unparsable: Unparsable::Reject,
            max_rows_per_statement: DEFAULT_MAX_ROWS_PER_STATEMENT,
            max_lock_hold_ms: DEFAULT_MAX_LOCK_HOLD_MS,
            lock_retries: DEFAULT_LOCK_RETRIES,
            lock_retry_delay_ms: DEFAULT_LOCK_RETRY_DELAY_MS,
        }
    }
}

pub const DEFAULT_LOCK_TIMEOUT_CAP_MS: u64 = 5_000;
/// The guides batch backfills by 1,000 to 10,000 rows: such batches pass with margin.
pub const DEFAULT_MAX_ROWS_PER_STATEMENT: u64 = 50_000;
/// DDL that the rules let run under a lock blocking traffic takes milliseconds (what would
/// scan or rewrite under it is refused); 10 s is far past that, and below the 30 s request
/// timeout most web stacks use, so the migration ends before the application's requests do.
pub const DEFAULT_MAX_LOCK_HOLD_MS: u64 = 10_000;
/// What stands in a migration's way is mostly a transaction of a few seconds (a batch job,
/// a slow request): 3 retries after about 1, 2 and 4 s outlast it, and the application
/// sees at most 4 stalls of the cap each. A transaction of minutes no count of retries
/// waits out; the error names it instead.
pub const DEFAULT_LOCK_RETRIES: u32 = 3;
pub const DEFAULT_LOCK_RETRY_DELAY_MS: u64 = 1_000;
/// More retries than this would keep a deploy waiting for hours.
pub const MAX_LOCK_RETRIES: u32 = 100;

/// One setting's name (without the `safe_migrations.` prefix), default and meaning.
pub struct SettingSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub accepts: &'static str,
    pub description: &'static str,
}

pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "mode",
        default: "off",
        accepts: "off, warn, enforce",
        description: "What the guard does for this role: nothing, warn, or refuse unsafe DDL.",
    },
    SettingSpec {
        name: "lock_timeout",
        default: "5s",
        accepts: "a duration such as 3s, 500ms, 1min (a bare number is milliseconds); 0 disables the cap",
        description: "Upper bound for lock_timeout while a guarded role's DDL statement runs.",
    },
    SettingSpec {
        name: "allow",
        default: "",
        accepts: "a comma-separated list of rule ids",
        description: "Rules not enforced for this role.",
    },
    SettingSpec {
        name: "acknowledgements",
        default: "on",
        accepts: "on, off (also true/false, yes/no, 1/0)",
        description: "Honour inline '-- safe_migrations:allow <rule> -- <reason>' comments.",
    },
    SettingSpec {
        name: "min_table_rows",
        default: "0",
        accepts: "a whole number of rows, 0 or more",
        description: "Lock rules do not apply to tables with fewer estimated rows (0 = always apply).",
    },
    SettingSpec {
        name: "unparsable",
        default: "reject",
        accepts: "reject, allow",
        description: "Proxy only: what to do with a statement that does not parse.",
    },
    SettingSpec {
        name: "max_rows_per_statement",
        default: "50000",
        accepts: "a whole number of rows, 0 or more",
        description: "An UPDATE, DELETE or MERGE the planner expects to change more rows is an unbatched backfill (0 = no limit).",
    },
    SettingSpec {
        name: "max_lock_hold",
        default: "10s",
        accepts: "a duration such as 10s, 500ms, 1min (a bare number is milliseconds); 0 disables the limit",
        description: "How long a guarded transaction may hold a lock that blocks reads or writes of an existing table before it is ended.",
    },
    SettingSpec {
        name: "lock_retries",
        default: "3",
        accepts: "a whole number of retries from 0 to 100; 0 disables retries",
        description: "How often a guarded statement whose lock wait reaches the lock_timeout cap is tried again.",
    },
    SettingSpec {
        name: "lock_retry_delay",
        default: "1s",
        accepts: "a duration such as 1s, 500ms (a bare number is milliseconds)",
        description: "The pause before the first retry; each next pause doubles (at most 30s), less up to half at random.",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub setting: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value for safe_migrations.{}: \"{}\": {}",
            self.setting, self.value, self.reason
        )
    }
}

impl std::error::Error for SettingError {}

impl Settings {
    /// Set one setting from its text form. `name` may carry the `safe_migrations.` prefix.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), SettingError> {
        let short = name.strip_prefix("safe_migrations.").unwrap_or(name);
        let err = |reason: String| SettingError {
            setting: short.to_string(),
            value: value.to_string(),
            reason,
        };
        let spec = SETTINGS.iter().find(|s| s.name == short).ok_or_else(|| {
            let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
            err(format!("unknown setting; the settings are {}", names.join(", ")))
        })?;
        let accepted = |what: &str| err(format!("{what}; accepted: {}", spec.accepts));
        match short {
            "mode" => self.mode = parse_mode(value).ok_or_else(|| accepted("not a mode"))?,
            "lock_timeout" => self.lock_timeout_cap_ms = parse_duration_ms(value).map_err(|why| accepted(&why))?,
            "allow" => self.allow = parse_rule_list(value).map_err(err)?,
            "acknowledgements" => self.acknowledgements = parse_bool(value).ok_or_else(|| accepted("not a boolean"))?,
            "min_table_rows" => {
                self.min_table_rows = value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| accepted("not a whole number of rows"))?
            }
            "max_rows_per_statement" => {
                self.max_rows_per_statement = value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| accepted("not a whole number of rows"))?
            }
            "max_lock_hold" => self.max_lock_hold_ms = parse_duration_ms(value).map_err(|why| accepted(&why))?,
            "lock_retries" => {
                self.lock_retries = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|retries| *retries <= MAX_LOCK_RETRIES)
                    .ok_or_else(|| accepted("not a whole number from 0 to 100"))?
            }
            "lock_retry_delay" => self.lock_retry_delay_ms = parse_duration_ms(value).map_err(|why| accepted(&why))?,
            "unparsable" => {
                self.unparsable = match value.trim().to_ascii_lowercase().as_str() {
                    "reject" => Unparsable::Reject,
                    "allow" => Unparsable::Allow,
                    _ => return Err(accepted("not a choice")),
                }
            }
            _ => unreachable!("every SETTINGS entry is handled above"),
        }
        Ok(())
    }

    /// The current value of a setting in the text form `apply` accepts.
    pub fn value_of(&self, name: &str) -> Option<String> {
        let short = name.strip_prefix("safe_migrations.").unwrap_or(name);
        Some(match short {
            "mode" => self.mode.name().to_string(),
            "lock_timeout" => format_duration_ms(self.lock_timeout_cap_ms),
            "allow" => self.allow.iter().cloned().collect::<Vec<_>>().join(","),
            "acknowledgements" => if self.acknowledgements { "on" } else { "off" }.to_string(),
            "min_table_rows" => self.min_table_rows.to_string(),
            "max_rows_per_statement" => self.max_rows_per_statement.to_string(),
            "max_lock_hold" => format_duration_ms(self.max_lock_hold_ms),
            "lock_retries" => self.lock_retries.to_string(),
            "lock_retry_delay" => format_duration_ms(self.lock_retry_delay_ms),
            "unparsable" => match self.unparsable {
                Unparsable::Reject => "reject",
                Unparsable::Allow => "allow",
            }
            .to_string(),
            _ => return None,
        })
    }
}

pub fn parse_mode(value: &str) -> Option<Mode> {
    match value.trim().to_ascii_lowercase().as_str() {
        "off" => Some(Mode::Off),
        "warn" => Some(Mode::Warn),
        "enforce" => Some(Mode::Enforce),
        _ => None,
    }
}

/// Postgres' boolean spellings.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// A duration as Postgres writes time GUCs: `3s`, `500ms`, `1 min`, `2h`, `1d`,
/// `250us` (rounded up to 1ms), or a bare number of milliseconds.
pub fn parse_duration_ms(value: &str) -> Result<u64, String> {
    let text = value.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" does not start with a number"))?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => return Err(format!("unknown unit \"{other}\" (units: us, ms, s, min, h, d)")),
    };
    let ms = (number * factor).ceil();
    // lock_timeout is an int GUC in milliseconds.
    if ms > f64::from(i32::MAX) {
        return Err("too large (at most 2147483647ms)".to_string());
    }
    Ok(ms as u64)
}

pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        "0".to_string()
    } else if ms.is_multiple_of(60_000) {
        format!("{}min", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// A comma- or space-separated list of rule ids, each checked against the rule catalogue.
pub fn parse_rule_list(value: &str) -> Result<BTreeSet<String>, String> {
    let mut rules = BTreeSet::new();
    for id in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let id = id.to_ascii_lowercase();
        if !crate::rules::RULES.iter().any(|rule| rule.id == id) {
            let known: Vec<&str> = crate::rules::RULES.iter().map(|rule| rule.id).collect();
            return Err(format!("unknown rule \"{id}\"; the rules are {}", known.join(", ")));
        }
        rules.insert(id);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_postgres_units() {
        assert_eq!(parse_duration_ms("3s"), Ok(3_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1 min"), Ok(60_000));
        assert_eq!(parse_duration_ms("250"), Ok(250));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert!(parse_duration_ms("3 parsecs").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("-1s").is_err());
    }

    #[test]
    fn bad_values_name_the_setting_and_the_accepted_values() {
        let mut settings = Settings::default();
        let err = settings.apply("safe_migrations.mode", "strict").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for safe_migrations.mode: \"strict\": not a mode; accepted: off, warn, enforce"
        );
        let err = settings.apply("allow", "drop_colum").unwrap_err();
        assert!(err.to_string().contains("unknown rule \"drop_colum\""), "{err}");
        assert!(settings
            .apply("verbosity", "1")
            .unwrap_err()
            .to_string()
            .contains("unknown setting"));
    }

    #[test]
    fn values_round_trip() {
        let mut settings = Settings::default();
        settings.apply("mode", "ENFORCE").unwrap();
        settings.apply("lock_timeout", "3s").unwrap();
        settings.apply("allow", "rename_column, drop_column").unwrap();
        assert_eq!(settings.mode, Mode::Enforce);
        assert_eq!(settings.value_of("lock_timeout").as_deref(), Some("3s"));
        assert_eq!(settings.value_of("allow").as_deref(), Some("drop_column,rename_column"));
    }
}
