//! Startup: the startup packet's parameters checked, authentication relayed between
//! client and server, and the role's policy read from the server.

use bytes::Bytes;
use policy::settings::SETTINGS;
use policy::Settings;

use crate::config::Config;
use crate::messages::authentication::{
    auth_code, expects_client_answer, sasl_initial_response, strip_channel_binding, AUTH_SASL,
};
use crate::messages::error_response::{self, fatal};
use crate::messages::startup::Startup;
use crate::messages::Message;

use super::{write, Reader, Session, SessionError, Writer};

/// Startup parameters that would set the policy (`-c safe_migrations.mode=off`).
pub fn startup_names_policy(startup: &Startup) -> Option<String> {
    startup.parameters.iter().find_map(|(name, value)| {
        if name.starts_with("safe_migrations.") {
            Some(name.clone())
        } else if name == "options" && value.contains("safe_migrations") {
            Some(format!("options={value}"))
        } else {
            None
        }
    })
}

/// Relay authentication; returns the server's first ReadyForQuery (not yet relayed) and
/// the body of its BackendKeyData (relayed), which a cancel of the proxy's own needs.
pub(super) async fn relay_auth(
    client_rd: &mut Reader,
    client_wr: &mut Writer,
    server_rd: &mut Reader,
    server_wr: &mut Writer,
) -> Result<Option<(Message, Option<Bytes>)>, SessionError> {
    let mut backend_key = None;
    // The server offered channel binding and the proxy hid it.
    let mut hid_channel_binding = false;
    loop {
        let Some(message) = server_rd.next().await.map_err(SessionError::Server)? else {
            return Ok(None);
        };
        match message.tag {
            b'R' => {
                let code = auth_code(&message).map_err(SessionError::Server)?;
                let forwarded = if code == AUTH_SASL {
                    let (stripped, hid) = strip_channel_binding(&message).map_err(SessionError::Server)?;
                    hid_channel_binding = hid;
                    stripped
                } else {
                    message
                };
                write(client_wr, &forwarded.bytes).await.map_err(SessionError::Client)?;
                if expects_client_answer(code) {
                    let Some(answer) = client_rd.next().await.map_err(SessionError::Client)? else {
                        return Ok(None);
                    };
                    if code == AUTH_SASL && answer.tag == b'p' {
                        let (mechanism, flag) = sasl_initial_response(&answer).map_err(SessionError::Client)?;
                        // 'y' = "I support channel binding, the server did not offer it": the
                        // server, which does, would refuse it as a downgrade, cryptically.
                        if mechanism.ends_with("-PLUS") || (flag == Some(b'y') && hid_channel_binding) {
                            let why = "safe_migrations proxy: SCRAM channel binding cannot pass through the proxy \
                                 (TLS ends at the proxy, so the server would see a different channel); connect \
                                 with channel_binding=disable, or to a proxy leg without TLS (sslmode=disable on \
                                 a loopback address)"
                                .to_string();
                            let _ = write(client_wr, &fatal(error_response::INVALID_AUTHORIZATION, &why)).await;
                            return Err(SessionError::Refused(why));
                        }
                    }
                    write(server_wr, &answer.bytes).await.map_err(SessionError::Server)?;
                }
            }
            b'Z' => return Ok(Some((message, backend_key))),
            b'K' => {
                backend_key = Some(Bytes::copy_from_slice(message.body()));
                write(client_wr, &message.bytes).await.map_err(SessionError::Client)?
            }
            b'E' => {
                write(client_wr, &message.bytes).await.map_err(SessionError::Client)?;
                return Ok(None);
            }
            _ => write(client_wr, &message.bytes).await.map_err(SessionError::Client)?,
        }
    }
}

impl Session {
    /// The role's policy: the server's `safe_migrations.*` values, then the file.
    pub(super) async fn read_policy(&mut self, config: &Config) -> Result<(), SessionError> {
        let columns: Vec<String> = SETTINGS
            .iter()
            .map(|spec| format!("pg_catalog.current_setting('safe_migrations.{}', true)", spec.name))
            .chain([
                "pg_catalog.current_setting('server_version_num')".to_string(),
                "pg_catalog.current_setting('TimeZone')".to_string(),
                "pg_catalog.current_setting('standard_conforming_strings')".to_string(),
                "pg_catalog.current_setting('is_superuser')".to_string(),
            ])
            .collect();
        let sql = format!("SELECT {}", columns.join(", "));
        let mut results = self.hidden_queries(&[sql]).await?;
        let row =
            results.pop().flatten().and_then(|mut rows| rows.pop()).ok_or_else(|| {
                self.refuse_session("cannot read the role's safe_migrations settings from the server")
            })?;
        let mut settings = Settings::default();
        for (spec, value) in SETTINGS.iter().zip(&row) {
            if let Some(value) = value.as_deref().filter(|value| !value.trim().is_empty()) {
                if let Err(err) = settings.apply(spec.name, value) {
                    return Err(self.refuse_session(&err.to_string()));
                }
            }
        }
        self.server_version_num = row.get(SETTINGS.len()).cloned().flatten().and_then(|v| v.parse().ok());
        if self.tracker.timezone.is_none() {
            self.tracker.timezone = row.get(SETTINGS.len() + 1).cloned().flatten();
        }
        if let Some(Some(value)) = row.get(SETTINGS.len() + 2) {
            self.tracker.standard_conforming_strings = value == "on";
        }
        if self.tracker.superuser.is_none() {
            self.tracker.superuser = row
                .get(SETTINGS.len() + 3)
                .cloned()
                .flatten()
                .map(|value| value == "on");
        }
        if let Err(err) = config.apply(&self.role, &mut settings) {
            return Err(self.refuse_session(&err));
        }
        self.settings = settings;
        Ok(())
    }
}
