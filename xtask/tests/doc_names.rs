//! `cargo doc --workspace` writes each documented library and binary to
//! `target/doc/<name with - as _>/`: two targets with the same directory overwrite each
//! other's files mid-run, and a cold CI run failed that way (the CLI's `rustauth-kv`
//! binary against the facade library `rustauth_kv`). This test fails on any such pair.

use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn no_two_documented_targets_share_a_doc_directory() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut checked = 0;
    for package in metadata["packages"].as_array().expect("packages") {
        for target in package["targets"].as_array().expect("targets") {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .expect("kind")
                .iter()
                .filter_map(|k| k.as_str())
                .collect();
            let documented = target["doc"].as_bool().unwrap_or(true);
            if !documented
                || !kinds
                    .iter()
                    .any(|k| ["lib", "bin", "proc-macro"].contains(k))
            {
                continue;
            }
            checked += 1;
            let dir = target["name"].as_str().expect("name").replace('-', "_");
            let who = format!(
                "{} target {} of {}",
                kinds.join("/"),
                target["name"],
                package["name"]
            );
            if let Some(other) = seen.insert(dir.clone(), who.clone()) {
                panic!(
                    "{who} and {other} both document into target/doc/{dir}/: set `doc = false` \
                     on one of them"
                );
            }
        }
    }
    assert!(checked > 5, "only {checked} documented targets found");
}
