//! The connect-time contract both backends share: one deadline for the whole connect
//! (TCP, TLS, AUTH, SELECT and the version check), and errors that say where.
//!
//! A backend builds its client, then hands the rest of the connect to [`connect_within`]
//! so that `connect_timeout` bounds everything a caller waits for, and every failure
//! names the (redacted) server and the database number.

use std::future::Future;
use std::time::Duration;

use crate::config::ServerAddress;
use crate::error::{ErrorKind, KvError, KvResult};

/// Runs `connect` (the client's connect plus [`crate::health::ensure_supported_server`])
/// within `timeout`, naming `server` and its database in every error.
///
/// On timeout the error is [`ErrorKind::Timeout`]; any other error keeps its kind and
/// gains the place: `NOAUTH ... (while connecting to redis://127.0.0.1:6379/3, database 3)`.
pub async fn connect_within<T>(
    server: &ServerAddress,
    timeout: Duration,
    connect: impl Future<Output = KvResult<T>>,
) -> KvResult<T> {
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(while_connecting(e, server)),
        Err(_) => Err(KvError::new(
            ErrorKind::Timeout,
            format!(
                "connecting to {server} (database {}) took longer than {timeout:?}",
                server.database
            ),
        )),
    }
}

/// `e` with the server and database it happened on after its message (unless the message
/// already names them). The place goes last so that a server reply keeps its code first
/// ([`KvError::server_code`]).
pub fn while_connecting(e: KvError, server: &ServerAddress) -> KvError {
    let place = format!(
        "(while connecting to {server}, database {})",
        server.database
    );
    if e.message().contains(&place) {
        return e;
    }
    e.map_message(|m| format!("{m} {place}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(url: &str) -> ServerAddress {
        ServerAddress::parse(url).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_connect_is_a_timeout_naming_server_and_database() {
        let server = address("redis://:secret-pw@cache:6380/3");
        let e = connect_within(&server, Duration::from_secs(1), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("cache:6380"), "{e}");
        assert!(e.message().contains("database 3"), "{e}");
        assert!(!e.to_string().contains("secret-pw"), "{e}");
    }

    #[tokio::test]
    async fn a_refused_auth_keeps_its_kind_and_gains_the_place() {
        let server = address("redis://cache:6379/0");
        let e = connect_within(&server, Duration::from_secs(1), async {
            Err::<(), _>(KvError::server_reply(
                "NOAUTH Authentication required.",
                None,
            ))
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(
            e.server_code(),
            Some("NOAUTH"),
            "the reply's code stays first"
        );
        assert!(e.message().starts_with("NOAUTH Authentication required. "));
        assert!(e.message().contains("cache:6379") && e.message().contains("database 0"));
        let again = while_connecting(e, &server);
        assert_eq!(again.message().matches("while connecting to").count(), 1);
    }
}
