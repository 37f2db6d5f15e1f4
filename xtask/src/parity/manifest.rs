//! `reference/parity.toml`: one row per upstream behaviour, in our words, with our
//! status, a one-line rationale and the conformance cases that are its evidence.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::checks::{Case, Results};

/// The manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    /// Upstream versions, in table order: `version = "tag@commit"`.
    pub(crate) versions: Vec<Version>,
    /// SHA1 of every Lua source, by file name without `.lua`.
    pub(crate) lua: BTreeMap<String, String>,
    /// The behaviours.
    #[serde(rename = "row")]
    pub(crate) rows: Vec<Row>,
}

/// A pinned upstream version.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Version {
    /// Short name used by rows (`1.6.9`, `1.7`).
    pub(crate) name: String,
    /// What exactly is pinned.
    pub(crate) tag: String,
    /// The commit.
    pub(crate) commit: String,
}

/// One upstream behaviour.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Row {
    /// Stable identifier.
    pub(crate) id: String,
    /// Which upstream versions have this behaviour.
    pub(crate) versions: Vec<String>,
    /// Area: `storage`, `rate-limit`, `sessions`.
    pub(crate) area: String,
    /// The upstream behaviour, in our words.
    pub(crate) upstream: String,
    /// `same`, `extension`, `intentional-difference` or `out-of-scope`.
    pub(crate) status: String,
    /// Why, in one line.
    pub(crate) rationale: String,
    /// Conformance cases that prove our side of the row.
    #[serde(default)]
    pub(crate) evidence: Vec<String>,
}

const STATUSES: [&str; 4] = [
    "same",
    "extension",
    "intentional-difference",
    "out-of-scope",
];

impl Manifest {
    /// Reads `reference/parity.toml` under `root`.
    pub(crate) fn load(root: &Path) -> Result<Self, String> {
        let path = root.join("reference/parity.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Structural problems and evidence that names no existing case.
    pub(crate) fn check_evidence(&self, cases: &[Case]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        for row in &self.rows {
            if !ids.insert(&row.id) {
                problems.push(format!("row {:?} appears twice", row.id));
            }
            if !STATUSES.contains(&row.status.as_str()) {
                problems.push(format!(
                    "row {:?}: status {:?} is not one of {STATUSES:?}",
                    row.id, row.status
                ));
            }
            for v in &row.versions {
                if !self.versions.iter().any(|known| &known.name == v) {
                    problems.push(format!("row {:?}: unknown upstream version {v:?}", row.id));
                }
            }
            if row.evidence.is_empty() && row.status != "out-of-scope" {
                problems.push(format!(
                    "row {:?} ({}) has no evidence: only out-of-scope rows may have none",
                    row.id, row.status
                ));
            }
            for case in &row.evidence {
                if !cases.iter().any(|c| &c.name == case) {
                    problems.push(format!(
                        "row {:?} names case {case:?}, which does not exist in tests-conformance",
                        row.id
                    ));
                }
            }
        }
        problems
    }

    /// Evidence cells that did not pass (failed, not run, or missing from the results).
    pub(crate) fn check_results(&self, cases: &[Case], results: &Results) -> Vec<String> {
        let mut failures = Vec::new();
        for row in &self.rows {
            for name in &row.evidence {
                let Some(case) = cases.iter().find(|c| &c.name == name) else {
                    continue;
                };
                for topology in case.topologies() {
                    match results.status(name, topology) {
                        Some("pass") => {}
                        Some(other) => failures.push(format!(
                            "row {:?}: case {name} [{topology}] is {other}",
                            row.id
                        )),
                        None => failures.push(format!(
                            "row {:?}: case {name} [{topology}] did not run",
                            row.id
                        )),
                    }
                }
            }
        }
        failures
    }
}
