//! The database URL a migration command reads (`postgres://user:pass@host:port/db?...`),
//! taken apart only as far as `run` and `check --database-url` need: where the server is,
//! who connects to which database, what TLS it asks for, and the same URL pointing at the
//! proxy instead.

use proxy::UpstreamTls;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// `postgres://`, `postgresql://` or `jdbc:postgresql://`.
    scheme: String,
    /// `user:password@`, as written (possibly empty).
    userinfo: String,
    /// The server's host (an IPv6 address without brackets) and port.
    host: String,
    port: u16,
    /// From the first `/` on, without the query: the database.
    path: String,
    /// The query's `name=value` pairs, as written.
    parameters: Vec<(String, String)>,
}

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let scheme = ["postgres://", "postgresql://", "jdbc:postgresql://"]
            .into_iter()
            .find(|scheme| text.len() >= scheme.len() && text[..scheme.len()].eq_ignore_ascii_case(scheme))
            .ok_or("not a postgres:// or postgresql:// URL (key=value strings are not rewritten: pass --upstream and point the command at PGHOST/PGPORT)")?;
        let rest = &text[scheme.len()..];
        // As libpq reads it: user credentials end at the first `@` met before any `/`
        // (a `?` or `#` in a password is part of it); the host ends at `/` or `?`.
        let (userinfo, rest) = match rest.find(['@', '/']) {
            Some(at) if rest.as_bytes()[at] == b'@' => (&rest[..=at], &rest[at + 1..]),
            _ => ("", rest),
        };
        let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (hostport, rest) = rest.split_at(host_end);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let parameters: Vec<(String, String)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_string(), value.to_string())
            })
            .collect();
        // Names compared decoded, as libpq decodes them (`%68ost` is host).
        let parameter = |name: &str| last_parameter(&parameters, name);
        if hostport.contains(',') {
            return Err("names several hosts: pass --upstream HOST:PORT for the one to guard".to_string());
        }
        let (host, port) = split_host_port(hostport)?;
        let host = match (host, parameter("host")) {
            (_, Some(host)) if !host.is_empty() => host,
            (host, _) => host,
        };
        if host.is_empty() || host.starts_with('/') || host.contains(',') {
            return Err(format!(
                "names no TCP host{}: pass --upstream HOST:PORT",
                if host.starts_with('/') {
                    " (a Unix socket directory)"
                } else {
                    ""
                }
            ));
        }
        let port = match (port, parameter("port")) {
            (_, Some(port)) if !port.is_empty() => port,
            (Some(port), _) => port,
            (None, _) => "5432".to_string(),
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or("its port is not a TCP port (1 to 65535)")?;
        Ok(DatabaseUrl {
            scheme: scheme.to_string(),
            userinfo: userinfo.to_string(),
            host,
            port,
            path: path.to_string(),
            parameters,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user the URL names (`user@`, or `?user=`, which wins as in libpq), decoded.
    pub fn user(&self) -> Option<String> {
        let named = self.userinfo.trim_end_matches('@');
        let named = named.split_once(':').map_or(named, |(user, _)| user);
        self.parameter("user")
            .or_else(|| Some(percent_decode(named)))
            .filter(|user| !user.is_empty())
    }

    /// The password the URL holds (`user:password@` or `?password=`), decoded.
    pub fn password(&self) -> Option<String> {
        let userinfo = self.userinfo.trim_end_matches('@');
        self.parameter("password")
            .or_else(|| userinfo.split_once(':').map(|(_, password)| percent_decode(password)))
    }

    /// The database the URL names (its path, or `?dbname=`), decoded.
    pub fn dbname(&self) -> Option<String> {
        self.parameter("dbname")
            .or_else(|| Some(percent_decode(self.path.trim_start_matches('/'))))
            .filter(|name| !name.is_empty())
    }

    /// The last value of the parameter `name`, decoded.
    pub fn parameter(&self, name: &str) -> Option<String> {
        last_parameter(&self.parameters, name)
    }

    /// Where the server listens, as `--upstream` takes it.
    pub fn upstream(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The TLS the URL asks of the connection to the server: its sslmode (`verify-ca`
    /// refused: the proxy verifies the host name too, with verify-full), else `ssl=true`
    /// as node-postgres and JDBC write it (require); None when it says nothing.
    pub fn upstream_tls(&self) -> Result<Option<UpstreamTls>, String> {
        let value = |name: &str| last_parameter(&self.parameters, name);
        if let Some(mode) = value("sslmode") {
            return match mode.as_str() {
                "disable" => Ok(Some(UpstreamTls::Disable)),
                "allow" | "prefer" => Ok(Some(UpstreamTls::Prefer)),
                "require" => Ok(Some(UpstreamTls::Require)),
                "verify-full" => Ok(Some(UpstreamTls::VerifyFull)),
                "verify-ca" => Err(
                    "sslmode=verify-ca: the proxy verifies the server's certificate with its host name (verify-full); pass --upstream-tls".to_string(),
                ),
                other => Err(format!("sslmode={other} is not a libpq sslmode")),
            };
        }
        Ok(match value("ssl").as_deref() {
            Some("true" | "1") => Some(UpstreamTls::Require),
            _ => None,
        })
    }

    /// The CA file the URL names for verifying the server (`sslrootcert`).
    pub fn root_cert(&self) -> Option<String> {
        last_parameter(&self.parameters, "sslrootcert").filter(|path| !path.is_empty() && path != "system")
    }

    /// The same URL for a server at `host:port` on loopback: user, password, database
    /// and parameters kept, but what would send the client elsewhere (host, hostaddr,
    /// port, a service file entry) or ask the proxy for TLS (sslmode, JDBC's ssl) replaced.
    pub fn pointed_at(&self, host: &str, port: u16) -> String {
        let mut parameters: Vec<String> = self
            .parameters
            .iter()
            .filter(|(name, _)| {
                // What sends the client elsewhere or asks the proxy for what it has not
                // (TLS, channel binding, which needs TLS): decoded, as libpq reads names.
                !matches!(
                    percent_decode(name).as_str(),
                    "host" | "hostaddr" | "port" | "service" | "sslmode" | "ssl" | "sslrootcert" | "channel_binding"
                )
            })
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        parameters.push("sslmode=disable".to_string());
        if self.scheme.starts_with("jdbc:") {
            parameters.push("ssl=false".to_string());
        }
        format!(
            "{}{}{host}:{port}{}?{}",
            self.scheme,
            self.userinfo,
            self.path,
            parameters.join("&")
        )
    }
}

/// The value of the last parameter named `name`, names and value percent-decoded, as
/// libpq reads them (a later one wins).
fn last_parameter(parameters: &[(String, String)], name: &str) -> Option<String> {
    parameters
        .iter()
        .rev()
        .find(|(key, _)| percent_decode(key) == name)
        .map(|(_, value)| percent_decode(value))
}

/// `host:port`, `[v6]:port`, `host` or empty, percent-decoded.
fn split_host_port(hostport: &str) -> Result<(String, Option<String>), String> {
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("host {hostport:?}: an IPv6 address without its closing ]"))?;
        let port = match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("host {hostport:?}: expected :port after ]"))?
                    .to_string(),
            ),
        };
        return Ok((host.to_string(), port));
    }
    Ok(match hostport.rsplit_once(':') {
        Some((host, port)) => (percent_decode(host), Some(port.to_string())),
        None => (percent_decode(hostport), None),
    })
}

/// `%2F` and the like as the bytes they stand for (invalid escapes kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_points_at_the_proxy_with_everything_else_kept() {
        let url = DatabaseUrl::parse("postgres://mig:p%40ss@db.internal:6543/app?sslmode=require&application_name=x")
            .unwrap();
        assert_eq!(url.upstream(), "db.internal:6543");
        assert_eq!(url.upstream_tls(), Ok(Some(UpstreamTls::Require)));
        assert_eq!(
            url.pointed_at("127.0.0.1", 40000),
            "postgres://mig:p%40ss@127.0.0.1:40000/app?application_name=x&sslmode=disable"
        );
        let url = DatabaseUrl::parse("postgresql://[::1]/app").unwrap();
        assert_eq!(url.upstream(), "[::1]:5432");
        assert_eq!(url.upstream_tls(), Ok(None));
        let url = DatabaseUrl::parse("postgres:///app?host=db&port=5433&sslmode=verify-full").unwrap();
        assert_eq!(url.upstream(), "db:5433");
        assert_eq!(
            url.pointed_at("127.0.0.1", 1),
            "postgres://127.0.0.1:1/app?sslmode=disable"
        );
        let url = DatabaseUrl::parse("postgres://db/app?service=prod&hostaddr=10.0.0.5").unwrap();
        assert_eq!(
            url.pointed_at("127.0.0.1", 1),
            "postgres://127.0.0.1:1/app?sslmode=disable"
        );
        // A password with `?`, `#` and `:`: the host is after the `@`, as libpq reads it.
        let url = DatabaseUrl::parse("postgres://admin:5432?x#y@db/app").unwrap();
        assert_eq!(url.upstream(), "db:5432");
        assert_eq!(
            url.pointed_at("127.0.0.1", 1),
            "postgres://admin:5432?x#y@127.0.0.1:1/app?sslmode=disable"
        );
        let url =
            DatabaseUrl::parse("postgres://db/app?%68ost=other&channel_binding=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(url.upstream(), "other:5432");
        assert_eq!(url.root_cert().as_deref(), Some("/ca.pem"));
        assert_eq!(
            url.pointed_at("127.0.0.1", 1),
            "postgres://127.0.0.1:1/app?sslmode=disable"
        );
        assert!(DatabaseUrl::parse("postgres://db/app?sslmode=verify-ca")
            .unwrap()
            .upstream_tls()
            .is_err());
        let url = DatabaseUrl::parse("jdbc:postgresql://db/app?ssl=true").unwrap();
        assert_eq!(url.upstream_tls(), Ok(Some(UpstreamTls::Require)));
        assert_eq!(
            url.pointed_at("127.0.0.1", 1),
            "jdbc:postgresql://127.0.0.1:1/app?sslmode=disable&ssl=false"
        );
    }

    #[test]
    fn urls_without_one_tcp_server_are_refused_with_the_reason() {
        for (url, reason) in [
            ("host=db port=5432", "not a postgres://"),
            ("postgres://a,b/app", "several hosts"),
            ("postgres:///app", "no TCP host"),
            ("postgres://%2Fvar%2Frun%2Fpostgresql/app", "Unix socket"),
            ("postgres:///app?host=/tmp", "Unix socket"),
            ("postgres://db:0/app", "not a TCP port"),
            ("postgres://db:http/app", "not a TCP port"),
            ("postgres://user:s3cr@db:x/app", "not a TCP port"),
            ("postgres://[::1/app", "closing ]"),
        ] {
            let err = DatabaseUrl::parse(url).unwrap_err();
            assert!(err.contains(reason), "{url}: {err}");
            assert!(!err.contains("s3cr"), "{url}: the error shows the password: {err}");
        }
    }
}
