//! Messages longer than `WHOLE_UP_TO`, from either side: passed on in pieces, read
//! whole up to `max_statement_bytes`, or refused.

use policy::report::Report;
use tokio::io::AsyncWriteExt;

use crate::guard::Refusal;
use crate::messages::error_response;
use crate::messages::{bind, printable, FrameError, Large, PassError};
use crate::tracker::{Expect, Owner};

use super::{Session, SessionError, Writer};

impl Session {
    /// A client message longer than `WHOLE_UP_TO`: CopyData and Bind pass on in pieces
    /// (a Bind's names are read from its start); a statement is read whole up to
    /// `max_statement_bytes` and decided as usual, and refused beyond.
    pub(super) async fn on_client_large(&mut self, large: Large) -> Result<(), SessionError> {
        self.release_retry();
        self.last_bind = None;
        if self.discard_until_sync {
            return self.pass_client_body(large, false).await;
        }
        match large.tag {
            b'd' => self.pass_client_body(large, true).await,
            b'B' => {
                let prefix = self
                    .client_rd
                    .peek_body(&large, bind::NAMES_WITHIN)
                    .await
                    .map_err(SessionError::Client)?;
                let (portal, statement) = {
                    let bind = bind::Bind::decode_body(prefix).map_err(SessionError::Client)?;
                    (bind.portal.to_string(), bind.statement.to_string())
                };
                self.open_extended_batch();
                let prepared = self.statements.get(&statement).cloned().unwrap_or_default();
                self.cap_batch_for(&prepared).await?;
                self.portals.insert(portal, prepared);
                self.pass_client_body(large, true).await?;
                self.tracker.push(Owner::Client, Expect::Bind, &mut self.to_client);
                Ok(())
            }
            _ if large.wire_len() <= self.max_statement_bytes => {
                let message = self.client_rd.read_rest(large).await.map_err(SessionError::Client)?;
                self.on_client(message).await.map(|_| ())
            }
            b'Q' | b'P' => {
                let (tag, size) = (large.tag, large.wire_len());
                self.pass_client_body(large, false).await?;
                let report = too_large_report(size, self.max_statement_bytes);
                let refusal = Refusal {
                    rule: "too_large".to_string(),
                    statement: format!("a statement of {size} bytes"),
                    ends_transaction: false,
                };
                if tag == b'Q' {
                    self.forget_tables_of_ended_transaction();
                    self.refuse_query(vec![report], refusal);
                } else {
                    self.open_extended_batch();
                    self.refuse_extended(vec![report], refusal, None);
                }
                Ok(())
            }
            tag => Err(SessionError::Client(FrameError::Malformed(format!(
                "message type '{}' of {} bytes is larger than the proxy accepts ({} bytes, --max-statement-bytes)",
                printable(tag),
                large.wire_len(),
                self.max_statement_bytes
            )))),
        }
    }

    /// Pass a large client message on to the server after everything before it, or
    /// drop it.
    async fn pass_client_body(&mut self, large: Large, forward: bool) -> Result<(), SessionError> {
        let result = if forward {
            self.flush().await?;
            self.server_wr
                .write_all(&large.header)
                .await
                .map_err(|err| SessionError::Server(err.into()))?;
            self.client_rd.pass_body(large, Some(&mut self.server_wr)).await
        } else {
            self.client_rd.pass_body::<Writer>(large, None).await
        };
        result.map_err(|err| match err {
            PassError::Read(err) => SessionError::Client(err),
            PassError::Write(err) => SessionError::Server(err.into()),
        })
    }

    /// A server message longer than `WHOLE_UP_TO`: a DataRow or CopyData for the client
    /// passes on in pieces; anything else is read whole up to `max_statement_bytes`.
    pub(super) async fn on_server_large(&mut self, large: Large) -> Result<(), SessionError> {
        if matches!(large.tag, b'D' | b'd') {
            let forward = self
                .tracker
                .on_server_streamed(large.tag, &mut self.to_client)
                .map_err(SessionError::Server)?;
            let result = if forward {
                self.flush().await?;
                self.client_wr
                    .write_all(&large.header)
                    .await
                    .map_err(|err| SessionError::Client(err.into()))?;
                self.server_rd.pass_body(large, Some(&mut self.client_wr)).await
            } else {
                self.server_rd.pass_body::<Writer>(large, None).await
            };
            return result.map_err(|err| match err {
                PassError::Read(err) => SessionError::Server(err),
                PassError::Write(err) => SessionError::Client(err.into()),
            });
        }
        if large.wire_len() > self.max_statement_bytes {
            return Err(SessionError::Server(FrameError::Malformed(format!(
                "message type '{}' of {} bytes is larger than the proxy accepts ({} bytes)",
                printable(large.tag),
                large.wire_len(),
                self.max_statement_bytes
            ))));
        }
        let message = self.server_rd.read_rest(large).await.map_err(SessionError::Server)?;
        self.tracker
            .on_server(message, &mut self.to_client)
            .map_err(SessionError::Server)
    }
}

/// A guarded role's statement larger than the proxy reads to decide it.
fn too_large_report(size: usize, limit: usize) -> Report {
    error_response::error_report(
        error_response::PROGRAM_LIMIT_EXCEEDED,
        format!(
            "safe_migrations proxy: this statement ({size} bytes) is larger than the proxy reads to check it \
             ({limit} bytes)"
        ),
        Some("The proxy decides a guarded role's statement from its whole text; nothing of it ran.".into()),
        Some("Split it into smaller statements, or start the proxy with a larger --max-statement-bytes.".into()),
    )
}
