//! `cargo xtask parity`: the audit of rustauth-kv against Better Auth, generated from
//! evidence so it cannot go stale.
//!
//! Inputs: `reference/parity.toml` (one row per upstream behaviour, with our status,
//! rationale and the conformance cases that are its evidence), the case lists in
//! `tests-conformance/src/lib.rs`, the Lua sources, the two backend crates, and the
//! results of a conformance run. Output: `docs/parity.md`.
//!
//! Checks (each also a `#[test]`, so `cargo test` catches drift without a server):
//! - every evidence case exists;
//! - every Lua source's SHA1 is pinned in the manifest, and the pin is current;
//! - both backend crates expose the same public items (no operation on one backend only);
//! - `docs/parity.md` is what the manifest generates.
//!
//! The command additionally runs the conformance suite (or reads `--results FILE`) and
//! fails unless every evidence case passed on every topology it applies to.

mod checks;
mod manifest;
mod render;

use std::path::{Path, PathBuf};

pub(crate) use checks::{backend_symmetry, cases, lua_pins, Results};
pub(crate) use manifest::Manifest;

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The generated document's path, relative to the root.
pub(crate) const DOC: &str = "docs/parity.md";

/// Runs the audit. `--results FILE` reads a conformance run instead of running one;
/// `--check` fails instead of writing when `docs/parity.md` is stale (also when `CI` is
/// set).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut results_file: Option<PathBuf> = None;
    let mut check = std::env::var_os("CI").is_some();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--results" => results_file = Some(it.next().ok_or("--results needs a file")?.into()),
            "--check" => check = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let root = root();
    let manifest = Manifest::load(&root)?;
    let cases = cases(&root)?;
    let mut problems = Vec::new();
    problems.extend(manifest.check_evidence(&cases));
    problems.extend(lua_pins(&root, &manifest));
    problems.extend(backend_symmetry(&root)?);
    if !problems.is_empty() {
        return Err(format!(
            "parity audit failed:\n  - {}",
            problems.join("\n  - ")
        ));
    }

    let results_file = match results_file {
        Some(f) => f,
        None => {
            let f = root.join("target").join("parity-results.tsv");
            let f_str = f.to_str().ok_or("non-UTF-8 target path")?.to_owned();
            println!("parity: running the conformance suite…");
            // A failing run still writes its results; the audit below says which evidence
            // failed, which is the more useful message.
            let _ = crate::cargo(&[
                "run",
                "--quiet",
                "-p",
                "tests-conformance",
                "--bin",
                "conformance",
                "--",
                "--results",
                &f_str,
            ]);
            f
        }
    };
    let text = std::fs::read_to_string(&results_file).map_err(|e| {
        format!(
            "cannot read conformance results {}: {e}",
            results_file.display()
        )
    })?;
    let results = Results::parse(&text)?;
    let failures = manifest.check_results(&cases, &results);
    if !failures.is_empty() {
        return Err(format!(
            "evidence did not pass everywhere:\n  - {}",
            failures.join("\n  - ")
        ));
    }

    let doc = render::render(&manifest, &cases, &results);
    let path = root.join(DOC);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == doc {
        println!(
            "parity: {} rows, all evidence passed; {DOC} is up to date",
            manifest.rows.len()
        );
        return Ok(());
    }
    if check {
        return Err(format!(
            "{DOC} is stale: run `cargo xtask parity` and commit the result"
        ));
    }
    std::fs::write(&path, doc).map_err(|e| format!("cannot write {DOC}: {e}"))?;
    println!(
        "parity: {} rows, all evidence passed; wrote {DOC}",
        manifest.rows.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::checks::Case;
    use super::*;

    fn load() -> (Manifest, Vec<Case>) {
        let root = root();
        (Manifest::load(&root).unwrap(), cases(&root).unwrap())
    }

    #[test]
    fn every_evidence_case_exists() {
        let (m, cases) = load();
        let problems = m.check_evidence(&cases);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn every_lua_source_is_pinned() {
        let (m, _) = load();
        let problems = lua_pins(&root(), &m);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn backends_expose_the_same_items() {
        let problems = backend_symmetry(&root()).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// The committed document is what a fully green run generates (CI's conformance tests
    /// prove the run is green; `cargo xtask parity` proves it with a live run). With
    /// `XTASK_BLESS=1` the test writes that document instead (for a manifest edit when a
    /// full live run is too slow; the conformance tests still prove the evidence).
    #[test]
    fn parity_doc_is_current() {
        let (m, cases) = load();
        let doc = render::render(&m, &cases, &Results::all_pass(&cases));
        if std::env::var_os("XTASK_BLESS").is_some() {
            std::fs::write(root().join(DOC), &doc).unwrap();
        }
        let committed = std::fs::read_to_string(root().join(DOC)).unwrap_or_default();
        assert!(
            committed == doc,
            "{DOC} is stale: run `cargo xtask parity` and commit the result"
        );
    }
}
