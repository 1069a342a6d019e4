//! The password file libpq reads (`PGPASSFILE`, else `~/.pgpass`): lines of
//! `host:port:database:user:password`, `*` matching anything, `\:` and `\\` escaped, the
//! first matching line winning. As libpq, a file that others may read is ignored (with a
//! warning).

use std::path::{Path, PathBuf};

/// Where libpq looks for the password file.
pub fn location() -> Option<PathBuf> {
    match std::env::var_os("PGPASSFILE") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")),
    }
}

/// The password for `user` on `database` at `host:port` in the file at `path`, if any.
/// A warning goes to standard error when the file is ignored.
pub fn lookup(path: &Path, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "safe-migrations check: password file {} has group or world access; permissions should be u=rw (0600) or less: ignored",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    find(&text, host, &port.to_string(), database, user)
}

fn find(text: &str, host: &str, port: &str, database: &str, user: &str) -> Option<String> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let fields = fields(line);
        let [h, p, d, u, password] = fields.as_slice() else {
            return None;
        };
        let matches = |pattern: &String, value: &str| pattern == "*" || pattern == value;
        (matches(h, host) && matches(p, port) && matches(d, database) && matches(u, user)).then(|| password.clone())
    })
}

/// A line's fields, unescaped; as libpq reads it, the password ends at the next
/// unescaped `:` too (what follows is ignored).
fn fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("never empty").push(next);
                }
            }
            ':' if fields.len() == 5 => break,
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:*:no\ndb.example:5432:app:migrator:first\n*:*:*:migrator:se\\:cret:x\n";
        assert_eq!(
            find(text, "db.example", "5432", "app", "migrator").as_deref(),
            Some("first")
        );
        assert_eq!(
            find(text, "db.example", "6432", "app", "migrator").as_deref(),
            Some("se:cret")
        );
        assert_eq!(find(text, "db.example", "5432", "app", "someone"), None);
        assert_eq!(find("short:line\n", "short", "5432", "app", "u"), None);
    }
}
