//! The proxy's own reports (warnings, notices) to the client, sent as the server sends
//! its own: not below the session's client_min_messages.

use bytes::BytesMut;
use policy::report::{Level, Report};

use crate::messages::error_response::encode_report;
use crate::messages::ready_for_query::TransactionStatus;

use super::{Session, SessionError};

impl Session {
    /// Warnings and notices go out as the server sends its own: not below the session's
    /// client_min_messages (asked of the server, which does not report it, whenever
    /// there is something to send; a client sets it with SET, set_config or a function).
    pub(super) async fn send_notices(&mut self, reports: Vec<Report>) -> Result<(), SessionError> {
        if reports.is_empty() {
            return Ok(());
        }
        let mut threshold = None;
        if self.tracker.quiet() && self.tracker.status != TransactionStatus::Failed {
            if let Ok(rows) = self.hidden_statement("SHOW client_min_messages").await? {
                threshold = rows.into_iter().next().and_then(|row| row.into_iter().next().flatten());
            }
        }
        let shown: Vec<Report> = reports
            .into_iter()
            .filter(|report| {
                threshold
                    .as_deref()
                    .is_none_or(|threshold| reaches_client(report.level, threshold))
            })
            .collect();
        self.send_reports(&shown);
        Ok(())
    }

    pub(super) fn send_reports(&mut self, reports: &[Report]) {
        if reports.is_empty() {
            return;
        }
        let mut bytes = BytesMut::new();
        for report in reports {
            encode_report(report, &mut bytes);
        }
        self.tracker.push_synthetic(bytes.freeze(), &mut self.to_client);
    }
}

/// Does a message of `level` reach a client whose client_min_messages is `threshold`?
/// (The server's order for clients: debug5 .. debug1, log, notice, warning, error.)
fn reaches_client(level: Level, threshold: &str) -> bool {
    let rank = |name: &str| match name.to_ascii_lowercase().as_str() {
        "notice" => 1,
        "warning" => 2,
        "error" => 3,
        _ => 0,
    };
    let level_rank = match level {
        Level::Notice => 1,
        Level::Warning => 2,
        Level::Error => 3,
    };
    level_rank >= rank(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_and_warnings_reach_the_client_as_client_min_messages_says() {
        for (threshold, notice, warning) in [
            ("debug1", true, true),
            ("log", true, true),
            ("NOTICE", true, true),
            ("warning", false, true),
            ("error", false, false),
        ] {
            assert_eq!(reaches_client(Level::Notice, threshold), notice, "{threshold}");
            assert_eq!(reaches_client(Level::Warning, threshold), warning, "{threshold}");
            assert!(reaches_client(Level::Error, threshold));
        }
    }
}
