//! The evidence the audit reads: the case lists, a conformance run's results, the Lua
//! sources' digests, and the two backends' public items.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::Manifest;

/// Topologies a storage case runs on (columns of the conformance table).
pub(crate) const STORAGE_TOPOLOGIES: [&str; 5] =
    ["memory", "redis", "fred", "redis+fred", "fred+redis"];
/// Topologies a connection case runs on.
pub(crate) const CONNECTION_TOPOLOGIES: [&str; 2] = ["redis", "fred"];

/// A conformance case, as listed in `tests-conformance/src/lib.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Case {
    /// The function name.
    pub(crate) name: String,
    /// Whether it is a connection case (server backends only).
    pub(crate) connection: bool,
}

impl Case {
    /// The topologies this case must pass on.
    pub(crate) fn topologies(&self) -> &'static [&'static str] {
        if self.connection {
            &CONNECTION_TOPOLOGIES
        } else {
            &STORAGE_TOPOLOGIES
        }
    }
}

/// Reads the case lists (`for_each_storage_case!`, `for_each_connection_case!`).
pub(crate) fn cases(root: &Path) -> Result<Vec<Case>, String> {
    let path = root.join("tests-conformance/src/lib.rs");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (macro_name, connection) in [
        ("for_each_storage_case", false),
        ("for_each_connection_case", true),
    ] {
        let start = text
            .find(&format!("macro_rules! {macro_name}"))
            .ok_or_else(|| format!("{} has no {macro_name}! list", path.display()))?;
        let body = &text[start..];
        let end = body.find("\n}").unwrap_or(body.len());
        for line in body[..end].lines() {
            let line = line.trim().trim_end_matches(',');
            if let Some((module, name)) = line.split_once("::") {
                let is_ident = |s: &str| {
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                };
                if is_ident(module) && is_ident(name) {
                    out.push(Case {
                        name: name.to_owned(),
                        connection,
                    });
                }
            }
        }
    }
    if out.is_empty() {
        return Err(format!("no cases found in {}", path.display()));
    }
    Ok(out)
}

/// A conformance run: status by case and topology.
#[derive(Debug, Default)]
pub(crate) struct Results(BTreeMap<(String, String), String>);

impl Results {
    /// Parses the runner's `--results` file (`case<TAB>topology<TAB>status` lines).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let parts: Vec<&str> = line.split('\t').collect();
            let [case, topology, status] = parts[..] else {
                return Err(format!(
                    "results line {}: {line:?} is not case<TAB>topology<TAB>status",
                    n + 1
                ));
            };
            map.insert((case.to_owned(), topology.to_owned()), status.to_owned());
        }
        Ok(Results(map))
    }

    /// What a fully green run reports.
    #[cfg(test)]
    pub(crate) fn all_pass(cases: &[Case]) -> Self {
        let mut map = BTreeMap::new();
        for c in cases {
            for t in c.topologies() {
                map.insert((c.name.clone(), (*t).to_owned()), "pass".to_owned());
            }
        }
        Results(map)
    }

    /// The status of one cell.
    pub(crate) fn status(&self, case: &str, topology: &str) -> Option<&str> {
        self.0
            .get(&(case.to_owned(), topology.to_owned()))
            .map(String::as_str)
    }
}

/// Every `.lua` file must be pinned in the manifest with its current SHA1, and every pin
/// must name an existing file.
pub(crate) fn lua_pins(root: &Path, manifest: &Manifest) -> Vec<String> {
    let dir = root.join("crates/kv-contract/src/lua");
    let mut problems = Vec::new();
    let mut found = BTreeSet::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => return vec![format!("cannot list {}: {e}", dir.display())],
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".lua"))
        else {
            continue;
        };
        let Ok(source) = std::fs::read(&path) else {
            problems.push(format!("cannot read {}", path.display()));
            continue;
        };
        let sha = sha1_smol::Sha1::from(&source).digest().to_string();
        found.insert(name.to_owned());
        match manifest.lua.get(name) {
            None => problems.push(format!(
                "{name}.lua (SHA1 {sha}) is not pinned in reference/parity.toml [lua]: a new \
                 script is a wire-format change; pin it and document it in docs/"
            )),
            Some(pinned) if *pinned != sha => problems.push(format!(
                "{name}.lua changed (SHA1 {sha}, pinned {pinned}): update the pin in \
                 reference/parity.toml [lua] together with the docs of the script"
            )),
            Some(_) => {}
        }
    }
    for name in manifest.lua.keys() {
        if !found.contains(name) {
            problems.push(format!(
                "reference/parity.toml pins {name}.lua, which does not exist"
            ));
        }
    }
    problems
}

/// The public items of a backend crate, with the backend's own name replaced by
/// `{backend}` so the two crates compare (`RedisConnection` ≈ `FredConnection`).
fn public_items(root: &Path, krate: &str, own: &str) -> Result<BTreeSet<String>, String> {
    let dir = root.join("crates").join(krate);
    let mut items = BTreeSet::new();
    let mut files = vec![dir.join("src/lib.rs")];
    if let Ok(entries) = std::fs::read_dir(dir.join("src")) {
        for e in entries.flatten() {
            if e.path() != dir.join("src/lib.rs") && e.path().extension().is_some_and(|x| x == "rs")
            {
                files.push(e.path());
            }
        }
    }
    let upper = {
        let mut c = own.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    let normalise = |s: &str| s.replace(&upper, "{Backend}").replace(own, "{backend}");
    // Trait impls count only on public types: an impl on a private helper (a shared
    // inner state's `Drop`, say) is not part of the crate's surface.
    let mut impls: Vec<(String, String)> = Vec::new();
    let mut public_types: BTreeSet<String> = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for line in text.lines() {
            let line = line.trim();
            let item = if let Some(rest) = line.strip_prefix("pub ") {
                let rest = rest.trim_start_matches("async ");
                let mut words =
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'));
                let kind = words.next().unwrap_or("");
                let name = words.find(|w| !w.is_empty()).unwrap_or("");
                if matches!(kind, "struct" | "enum" | "type") {
                    public_types.insert(name.to_owned());
                }
                match kind {
                    "fn" | "struct" | "enum" | "trait" | "type" | "const" | "mod" | "use" => {
                        format!("pub {kind} {}", normalise(name))
                    }
                    _ => continue,
                }
            } else if line.starts_with("impl ") && line.contains(" for ") {
                let trait_part = line
                    .trim_start_matches("impl ")
                    .split(" for ")
                    .next()
                    .unwrap_or("");
                let target = line
                    .split(" for ")
                    .nth(1)
                    .unwrap_or("")
                    .trim_end_matches(" {")
                    .trim();
                impls.push((trait_part.to_owned(), target.to_owned()));
                continue;
            } else {
                continue;
            };
            items.insert(item);
        }
    }
    for (trait_part, target) in impls {
        let type_name = target.split(['<', ' ']).next().unwrap_or("");
        if public_types.contains(type_name) {
            items.insert(format!(
                "impl {} for {}",
                normalise(&trait_part),
                normalise(&target)
            ));
        }
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map_err(|e| format!("{krate}/Cargo.toml: {e}"))?;
    if let Some(features) = manifest.split("[features]").nth(1) {
        for line in features.lines().skip(1) {
            if line.starts_with('[') {
                break;
            }
            if let Some((name, _)) = line.split_once('=') {
                items.insert(format!("feature {}", name.trim()));
            }
        }
    }
    Ok(items)
}

/// Both backends must expose the same public items and features: no operation, type or
/// feature on one backend only.
pub(crate) fn backend_symmetry(root: &Path) -> Result<Vec<String>, String> {
    let redis = public_items(root, "rustauth-redis", "redis")?;
    let fred = public_items(root, "rustauth-fred", "fred")?;
    let mut problems = Vec::new();
    for item in redis.difference(&fred) {
        problems.push(format!(
            "rustauth-redis has `{item}`, rustauth-fred does not"
        ));
    }
    for item in fred.difference(&redis) {
        problems.push(format!(
            "rustauth-fred has `{item}`, rustauth-redis does not"
        ));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_lists_are_read() {
        let cases = cases(&super::super::root()).unwrap();
        assert!(cases
            .iter()
            .any(|c| c.name == "set_get_roundtrip" && !c.connection));
        assert!(cases
            .iter()
            .any(|c| c.name == "reconnects_after_restart" && c.connection));
    }

    #[test]
    fn results_parse_and_report_missing_cells() {
        let r = Results::parse("a\tredis\tpass\nb\tfred\tfail\n").unwrap();
        assert_eq!(r.status("a", "redis"), Some("pass"));
        assert_eq!(r.status("b", "fred"), Some("fail"));
        assert_eq!(r.status("a", "fred"), None);
        assert!(Results::parse("only two\tcolumns").is_err());
    }
}
