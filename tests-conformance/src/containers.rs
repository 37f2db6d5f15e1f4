//! The optional testcontainers path (feature `testcontainers`): the shared server from an
//! official Redis or Valkey image named by `RUSTAUTH_REDIS_IMAGE` (`redis:8.2`,
//! `valkey/valkey:9`), when a Docker engine is reachable. Asked for without an engine, it
//! fails saying so; the default path stays the local binaries of `server.rs`.
//!
//! The container lives as long as the test process: a watchdog (`docker rm -f`, started
//! with the container and waiting on a pipe this process holds) removes it when the
//! process ends, however it ends — statics are never dropped.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage};

/// The environment variable naming the image, `name:tag`.
pub const IMAGE_ENV: &str = "RUSTAUTH_REDIS_IMAGE";

/// A Redis/Valkey container started for this process.
pub struct ContainerServer {
    url: String,
    _container: Container<GenericImage>,
    _watchdog: Child,
    _pipe: ChildStdin,
}

impl std::fmt::Debug for ContainerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContainerServer({})", self.url)
    }
}

impl ContainerServer {
    /// The server's URL on the Docker host.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Starts `image` (`name:tag`; `name` alone means `latest`) with snapshots off.
pub fn start(image: &str) -> Result<ContainerServer, String> {
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let (name, tag) = (name.to_owned(), tag.to_owned());
    let image_shown = image.to_owned();
    // The blocking runner makes its own runtime: run it off any async worker thread.
    std::thread::spawn(move || {
        let container = GenericImage::new(name, tag)
            .with_exposed_port(6379.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .start()
            .map_err(|e| {
                format!(
                    "{IMAGE_ENV}={image_shown} asks for a container, but it could not be \
                     started (is a Docker engine reachable? `docker info` must work): {e}"
                )
            })?;
        let host = container
            .get_host()
            .map_err(|e| format!("container host: {e}"))?;
        let port = container
            .get_host_port_ipv4(6379.tcp())
            .map_err(|e| format!("container port: {e}"))?;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"read -r _; docker rm -f "$0" >/dev/null 2>&1"#)
            .arg(container.id())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the container watchdog: {e}"))?;
        let mut pipe = watchdog.stdin.take().ok_or("watchdog has no stdin")?;
        let _ = pipe.flush();
        Ok(ContainerServer {
            url: format!("redis://{host}:{port}"),
            _container: container,
            _watchdog: watchdog,
            _pipe: pipe,
        })
    })
    .join()
    .map_err(|_| "the container start thread panicked".to_owned())?
}
