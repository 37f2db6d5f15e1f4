//! A fault injector: a loopback TCP proxy between a client and `redis-server`, switched
//! between faults while a case runs (pass through, reset, black hole, latency, a reply
//! cut in half).
//!
//! Faults a server process can show by itself (SIGSTOP, SIGKILL and restart, `CLIENT
//! KILL`, `SCRIPT FLUSH`, OOM) are driven through [`crate::server`] and a raw probe; this
//! proxy adds what only the network does. Dropping the proxy closes every connection it
//! holds.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does to the traffic, from the moment it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Reset every connection (existing ones at once, new ones on accept).
    Reset,
    /// Accept, never answer: bytes both ways are dropped, existing connections go
    /// silent. When the fault clears, connections that lost bytes are reset (their
    /// request/reply stream is out of step).
    BlackHole,
    /// Delay every chunk, both ways, by this much.
    Latency(Duration),
    /// Forward requests; send the first half of the next reply chunk, then reset.
    CutReply,
}

impl Fault {
    /// A short name for tables.
    pub fn name(self) -> String {
        match self {
            Fault::Pass => "pass".into(),
            Fault::Reset => "reset".into(),
            Fault::BlackHole => "black-hole".into(),
            Fault::Latency(d) => format!("latency {} ms", d.as_millis()),
            Fault::CutReply => "cut reply".into(),
        }
    }
}

/// A running proxy to one upstream port on 127.0.0.1.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    fault: Arc<watch::Sender<Fault>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let fault = Arc::new(watch::channel(Fault::Pass).0);
        let shared = fault.clone();
        let task = tokio::spawn(async move {
            // Dropped with the accept task: aborts every connection task.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(pipe(client, upstream, shared.subscribe()));
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(FaultProxy { port, fault, task })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}` through the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Switches to `fault`, for existing and new connections.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Makes dropping `s` send a RST instead of a FIN: a reset, as a broken network shows.
// Deprecated because a *non-zero* linger blocks the thread on drop; zero does not block
// (the kernel sends RST at once), which is exactly the reset wanted here.
#[allow(deprecated)]
fn reset_on_drop(s: &TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
}

async fn pipe(client: TcpStream, upstream: u16, mut fault: watch::Receiver<Fault>) {
    reset_on_drop(&client);
    if *fault.borrow() == Fault::Reset {
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    reset_on_drop(&server);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let mut from_client = vec![0u8; 64 * 1024];
    let mut from_server = vec![0u8; 64 * 1024];
    let mut lost_bytes = false;
    loop {
        let now = *fault.borrow_and_update();
        if now == Fault::Reset || (lost_bytes && now != Fault::BlackHole) {
            return;
        }
        tokio::select! {
            changed = fault.changed() => if changed.is_err() { return },
            read = client_rx.read(&mut from_client) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                match now {
                    Fault::BlackHole => lost_bytes = true,
                    Fault::Latency(d) => {
                        tokio::time::sleep(d).await;
                        if server_tx.write_all(&from_client[..n]).await.is_err() { return }
                    }
                    _ => if server_tx.write_all(&from_client[..n]).await.is_err() { return },
                }
            }
            read = server_rx.read(&mut from_server) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                match now {
                    Fault::BlackHole => lost_bytes = true,
                    Fault::Latency(d) => {
                        tokio::time::sleep(d).await;
                        if client_tx.write_all(&from_server[..n]).await.is_err() { return }
                    }
                    Fault::CutReply => {
                        let _ = client_tx.write_all(&from_server[..n.div_ceil(2)]).await;
                        let _ = client_tx.flush().await;
                        return;
                    }
                    _ => if client_tx.write_all(&from_server[..n]).await.is_err() { return },
                }
            }
        }
    }
}
