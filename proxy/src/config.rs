//! The proxy's config file: policy defaults and per-role overrides, in the same
//! vocabulary as the `safe_migrations.*` settings.
//!
//! ```toml
//! [defaults]
//! mode = "enforce"
//! lock_timeout = "3s"
//!
//! [roles.migrator]
//! allow = ["drop_column"]
//! ```
//!
//! A role's policy is built in this order, later wins: the values the server holds for
//! the role (`ALTER ROLE ... SET safe_migrations.*`), then `[defaults]`, then
//! `[roles.<name>]`. So the file wins where both speak.

use std::collections::BTreeMap;
use std::path::Path;

use policy::settings::SETTINGS;
use policy::Settings;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Setting name (without prefix) -> value, in the text form `Settings::apply` takes.
    pub defaults: Vec<(String, String)>,
    pub roles: BTreeMap<String, Vec<(String, String)>>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        Config::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let table: toml::Table = text.parse().map_err(|err: toml::de::Error| err.message().to_string())?;
        let mut config = Config::default();
        for (key, value) in table {
            match key.as_str() {
                "defaults" => config.defaults = section("defaults", &value)?,
                "roles" => {
                    let toml::Value::Table(roles) = value else {
                        return Err("[roles] must be a table of [roles.<name>] sections".into());
                    };
                    for (role, value) in roles {
                        let settings = section(&format!("roles.{role}"), &value)?;
                        config.roles.insert(role, settings);
                    }
                }
                other => {
                    return Err(format!(
                        "unknown key \"{other}\"; the file holds [defaults] and [roles.<name>] sections"
                    ))
                }
            }
        }
        Ok(config)
    }

    /// Apply `[defaults]` then `[roles.<role>]` on top of `settings`.
    pub fn apply(&self, role: &str, settings: &mut Settings) -> Result<(), String> {
        let role_settings = self.roles.get(role).into_iter().flatten();
        for (name, value) in self.defaults.iter().chain(role_settings) {
            settings.apply(name, value).map_err(|err| err.to_string())?;
        }
        Ok(())
    }
}

/// One section's settings, each checked by `Settings::apply` now so a bad file is
/// refused at startup rather than when a role connects.
fn section(name: &str, value: &toml::Value) -> Result<Vec<(String, String)>, String> {
    let toml::Value::Table(table) = value else {
        return Err(format!("[{name}] must be a table"));
    };
    let mut out = Vec::new();
    for (key, value) in table {
        let short = key.strip_prefix("safe_migrations.").unwrap_or(key);
        if !SETTINGS.iter().any(|spec| spec.name == short) {
            let known: Vec<&str> = SETTINGS.iter().map(|spec| spec.name).collect();
            return Err(format!(
                "[{name}] {key}: unknown setting; the settings are {}",
                known.join(", ")
            ));
        }
        let text = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.clone()),
                    _ => Err(format!("[{name}] {key}: a list must hold strings")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(format!("[{name}] {key}: expected a string, number, boolean or list")),
        };
        Settings::default()
            .apply(short, &text)
            .map_err(|err| format!("[{name}] {key}: {err}"))?;
        out.push((short.to_string(), text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::Mode;

    #[test]
    fn the_file_wins_and_roles_override_defaults() {
        let config = Config::parse(
            "[defaults]\nmode = \"warn\"\nlock_timeout = \"2s\"\n[roles.migrator]\nmode = \"enforce\"\nallow = [\"drop_column\"]\n",
        )
        .unwrap();
        let mut server = Settings::default();
        server.apply("lock_timeout", "10s").unwrap();
        server.apply("mode", "off").unwrap();
        let mut migrator = server.clone();
        config.apply("migrator", &mut migrator).unwrap();
        assert_eq!(migrator.mode, Mode::Enforce);
        assert_eq!(migrator.lock_timeout_cap_ms, 2_000);
        assert!(migrator.allow.contains("drop_column"));
        let mut other = server.clone();
        config.apply("app", &mut other).unwrap();
        assert_eq!(other.mode, Mode::Warn);
    }

    #[test]
    fn bad_files_name_the_key_and_what_is_accepted() {
        let err = Config::parse("[defaults]\nmode = \"strict\"\n").unwrap_err();
        assert!(
            err.contains("[defaults] mode") && err.contains("off, warn, enforce"),
            "{err}"
        );
        let err = Config::parse("[roles.app]\nverbose = true\n").unwrap_err();
        assert!(err.contains("[roles.app] verbose: unknown setting"), "{err}");
        let err = Config::parse("listen = 1\n").unwrap_err();
        assert!(err.contains("unknown key \"listen\""), "{err}");
        assert!(Config::parse("[defaults\n").is_err());
    }
}
