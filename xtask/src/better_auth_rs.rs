//! `cargo xtask better-auth-rs`: the better-auth-rs adapter (`integrations/better-auth-rs`,
//! a cargo workspace of its own) checked like the main workspace — `cargo fmt --check`,
//! `cargo clippy --all-targets -D warnings`, `cargo doc -D warnings`, `cargo test` —
//! with the main target directory, so the dependencies both workspaces share are built
//! once.
//!
//! better-auth-core always links the system ICU (`rust_icu_sys` without bindgen), and
//! its build needs ICU's major version in `RUST_ICU_MAJOR_VERSION_NUMBER`. This step
//! finds the library first (`pkg-config icu-uc icu-i18n`, else `libicuuc.so` in
//! `RUST_ICU_LINK_SEARCH_DIR` or the usual library directories) and fails, saying how to install it, when it is missing — it
//! never skips. The major version comes from the environment if set, else from
//! pkg-config, else 72 (Debian 12's `libicu-dev`, what `.cargo/config.toml` says).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::parity::root;

/// The adapter's workspace, relative to the root.
pub(crate) const DIR: &str = "integrations/better-auth-rs";

/// The variable rust_icu_sys's build script reads.
const ICU_VERSION_ENV: &str = "RUST_ICU_MAJOR_VERSION_NUMBER";

/// The ICU major version assumed when neither the environment nor pkg-config says.
const DEFAULT_ICU_MAJOR: &str = "72";

const INSTALL_HINT: &str = "install the ICU development files: `apt-get install libicu-dev` \
     (Debian/Ubuntu; `.ci/run` does this), `dnf install libicu-devel` (Fedora) or `brew \
     install icu4c` (macOS, then set PKG_CONFIG_PATH); for a library elsewhere set \
     RUST_ICU_LINK_SEARCH_DIR to its directory and RUST_ICU_MAJOR_VERSION_NUMBER to its \
     major version";

/// Runs the command.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!(
            "`xtask better-auth-rs` takes no arguments, got {a:?}"
        ));
    }
    check(&[])
}

/// Runs the step with `extra` environment for the tests (the server binary `xtask test`
/// chose).
pub(crate) fn check(extra: &[(&str, &std::ffi::OsStr)]) -> Result<(), String> {
    let major = icu_major()?;
    let dir = root().join(DIR);
    let target = crate::target_dir();
    eprintln!(
        "xtask: better-auth-rs adapter ({DIR}): ICU {major}, target {}",
        target.display()
    );
    let mut envs: Vec<(&str, OsString)> = vec![
        (ICU_VERSION_ENV, major.into()),
        ("CARGO_TARGET_DIR", target.into_os_string()),
    ];
    envs.extend(extra.iter().map(|(k, v)| (*k, v.to_os_string())));
    cargo_in(&dir, &["fmt", "--all", "--", "--check"], &envs)?;
    cargo_in(
        &dir,
        &[
            "clippy",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &envs,
    )?;
    let mut doc_envs = envs.clone();
    doc_envs.push(("RUSTDOCFLAGS", "-D warnings".into()));
    cargo_in(
        &dir,
        &["doc", "--no-deps", "--locked", "--quiet"],
        &doc_envs,
    )?;
    cargo_in(&dir, &["test", "--locked"], &envs)
}

/// The ICU major version to build against, after checking the library is there.
fn icu_major() -> Result<String, String> {
    let from_env = std::env::var(ICU_VERSION_ENV)
        .ok()
        .filter(|v| !v.is_empty());
    if let Some(v) = &from_env {
        if !v.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{ICU_VERSION_ENV}={v:?} is not an ICU major version (a number such as 72)"
            ));
        }
    }
    match pkg_config_version() {
        Some(Ok(version)) => {
            let major = version.split('.').next().unwrap_or("").to_owned();
            if let Some(v) = from_env {
                if v != major {
                    eprintln!(
                        "xtask: {ICU_VERSION_ENV}={v} but pkg-config finds ICU {version}; \
                         using {v} as set"
                    );
                }
                return Ok(v);
            }
            Ok(major)
        }
        other => {
            // pkg-config missing, or not knowing ICU: a library in a usual directory (or
            // RUST_ICU_LINK_SEARCH_DIR) still links.
            let why = match other {
                Some(Err(why)) => format!("pkg-config does not find it: {why}"),
                _ => "pkg-config is not installed".to_owned(),
            };
            match find_libicuuc() {
                Some(lib) => {
                    eprintln!("xtask: {why}; found {}", lib.display());
                    Ok(from_env.unwrap_or_else(|| DEFAULT_ICU_MAJOR.to_owned()))
                }
                None => Err(missing_icu(&why)),
            }
        }
    }
}

/// The error when ICU is missing: what was looked at, and how to install it.
fn missing_icu(why: &str) -> String {
    format!(
        "the better-auth-rs adapter needs the system ICU library (libicuuc.so, \
         libicui18n.so) and it is missing ({why}, and no libicuuc.so in the usual library \
         directories); {INSTALL_HINT}"
    )
}

/// `pkg-config --modversion icu-uc icu-i18n`: `None` when pkg-config cannot run.
fn pkg_config_version() -> Option<Result<String, String>> {
    let out = Command::new("pkg-config")
        .args(["--modversion", "icu-uc", "icu-i18n"])
        .output()
        .ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.lines().next().unwrap_or("no message").trim().to_owned();
        return Some(Err(err));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .next()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .ok_or_else(|| "pkg-config printed no version".to_owned()),
    )
}

/// The linkable `libicuuc.so` in `RUST_ICU_LINK_SEARCH_DIR` or a usual library directory.
fn find_libicuuc() -> Option<PathBuf> {
    find_libicuuc_in(library_dirs())
}

fn find_libicuuc_in(dirs: Vec<PathBuf>) -> Option<PathBuf> {
    dirs.into_iter()
        .map(|d| d.join("libicuuc.so"))
        .find(|p| p.exists())
}

fn library_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("RUST_ICU_LINK_SEARCH_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for d in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// Runs `cargo args` in `dir` with `envs`, inheriting stdout and stderr.
fn cargo_in(dir: &Path, args: &[&str], envs: &[(&str, OsString)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command.args(args).current_dir(dir);
    for (k, v) in envs {
        command.env(k, v);
    }
    if args.first() == Some(&"test") && std::env::var_os("CI").is_some() {
        // As in the main workspace: the failing case's message ends the log.
        command.env("RUST_BACKTRACE", "0");
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo {}` in {DIR} failed ({status})",
            args.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the library the step fails (it never skips), saying how to install it.
    #[test]
    fn missing_icu_fails_saying_how_to_install_it() {
        let empty = std::env::temp_dir().join(format!("xtask-no-icu-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        assert_eq!(find_libicuuc_in(vec![empty.clone()]), None);
        let _ = std::fs::remove_dir(&empty);
        let e = missing_icu("pkg-config is not installed");
        assert!(e.contains("apt-get install libicu-dev"), "{e}");
        assert!(e.contains("pkg-config is not installed"), "{e}");
        assert!(e.contains(ICU_VERSION_ENV), "{e}");
    }

    /// The workspace the step builds is where it says, and excluded from the main one.
    #[test]
    fn the_adapter_workspace_is_separate() {
        let manifest = std::fs::read_to_string(root().join(DIR).join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("\n[workspace]\n"),
            "{DIR} is not its own workspace"
        );
        let main = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
        assert!(
            main.contains(&format!("exclude = [\"{DIR}\"]")),
            "not excluded"
        );
        let config = std::fs::read_to_string(root().join(DIR).join(".cargo/config.toml")).unwrap();
        assert!(config.contains(ICU_VERSION_ENV));
        assert!(config.contains(&format!("\"{DEFAULT_ICU_MAJOR}\"")));
    }
}
