//! `sessions list|revoke|revoke-id`, through the bundle's session index.

use std::time::UNIX_EPOCH;

use rustauth_kv::session::TokenHashing;
use rustauth_kv::{Kv, KvOptionsBuilder};
use serde_json::json;

use crate::cli::{SessionsCmd, TokenHashingArg};
use crate::exit::CliError;
use crate::Outcome;

/// The session index's options the command needs (token hashing for `--except`).
pub(crate) fn configure(builder: KvOptionsBuilder, command: &SessionsCmd) -> KvOptionsBuilder {
    match command {
        SessionsCmd::Revoke {
            token_hashing: TokenHashingArg::Sha256,
            ..
        } => builder.sessions(|b| b.token_hashing(TokenHashing::Sha256)),
        _ => builder,
    }
}

/// Runs a `sessions` command.
pub(crate) async fn run(kv: &Kv, command: SessionsCmd) -> Result<Outcome, CliError> {
    let index = kv.sessions();
    match command {
        SessionsCmd::List { user } => {
            let sessions = index.list(&user).await?;
            let mut text = format!("{} live sessions of {user:?}\n", sessions.len());
            let rows: Vec<serde_json::Value> = sessions
                .iter()
                .map(|s| {
                    let expires_at_ms = s
                        .expires_at
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    text.push_str(&format!(
                        "{}  expires_at_ms={expires_at_ms}  {} bytes\n",
                        s.id,
                        s.value.len()
                    ));
                    json!({ "id": s.id, "expires_at_ms": expires_at_ms, "value_bytes": s.value.len() })
                })
                .collect();
            Ok(Outcome::new(
                json!({ "user": user, "sessions": rows }),
                text,
            ))
        }
        SessionsCmd::Revoke { user, except, .. } => {
            let revoked = match &except {
                Some(token) => index.revoke_all_except(&user, token).await?,
                None => index.revoke_all(&user).await?,
            };
            Ok(Outcome::new(
                json!({ "user": user, "revoked": revoked, "kept": except.is_some() }),
                format!("revoked {revoked} sessions of {user:?}"),
            ))
        }
        SessionsCmd::RevokeId { id } => {
            let revoked = index.delete_by_id(&id).await?;
            let text = if revoked {
                format!("revoked session {id}")
            } else {
                format!("no live session {id}")
            };
            Ok(Outcome::new(json!({ "id": id, "revoked": revoked }), text))
        }
    }
}
