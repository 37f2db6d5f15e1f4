//! `inspect`: keys per namespace (and "other"), memory estimates, `--max-keys`.

use crate::support::Env;

#[tokio::test]
async fn inspect_counts_every_namespace_and_estimates_memory() {
    let env = Env::new("inspect");
    let probe = env.probe().await;
    let mut pairs = Vec::new();
    for i in 0..50 {
        pairs.push((env.key(&format!("secondary:k{i}")), vec![b'x'; 100]));
    }
    for i in 0..7 {
        pairs.push((
            env.key(&format!("rate-limit:10.0.0.{i}|/sign-in")),
            b"1".to_vec(),
        ));
    }
    pairs.push((env.key("lock:{job}:fence"), b"3".to_vec()));
    pairs.push((env.key("legacy:thing"), b"v".to_vec()));
    // Outside the prefix: never counted.
    pairs.push((b"elsewhere:secondary:k".to_vec(), b"v".to_vec()));
    probe.set_many(pairs.into_iter()).await;

    let doc = env.json(&["inspect", "--sample", "5"]);
    assert_eq!(doc["prefix"], env.prefix.as_str(), "{doc}");
    assert_eq!(doc["scanned"], 59, "{doc}");
    assert_eq!(doc["complete"], true, "{doc}");
    assert_eq!(doc["memory_supported"], true, "{doc}");
    let rows = doc["namespaces"].as_array().unwrap();
    let row = |name: Option<&str>| {
        rows.iter()
            .find(|r| r["namespace"].as_str() == name)
            .unwrap_or_else(|| panic!("{name:?} missing: {doc}"))
    };
    assert_eq!(row(Some("secondary"))["keys"], 50);
    assert_eq!(row(Some("secondary"))["sampled"], 5);
    let bytes = row(Some("secondary"))["estimated_bytes"].as_u64().unwrap();
    assert!(bytes >= 50 * 100, "at least the values: {doc}");
    assert_eq!(row(Some("rate-limit"))["keys"], 7);
    assert_eq!(row(Some("lock"))["keys"], 1);
    assert_eq!(row(Some("session"))["keys"], 0);
    assert_eq!(row(Some("session"))["estimated_bytes"], 0);
    assert_eq!(row(Some("user_sessions"))["keys"], 0);
    assert_eq!(row(None)["keys"], 1, "the key in no namespace: {doc}");

    let doc = env.json(&["inspect", "--max-keys", "10", "--sample", "0"]);
    assert_eq!(doc["scanned"], 10, "{doc}");
    assert_eq!(doc["complete"], false, "{doc}");
    assert!(doc["namespaces"][0]["estimated_bytes"].is_null(), "{doc}");

    let run = env.run(&["inspect"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("NAMESPACE"), "{run:?}");
    assert!(run.stdout.contains("(other)"), "{run:?}");
}
