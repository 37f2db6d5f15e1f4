//! `ping`, `info`, and the error contract: exit codes 2 and 3, one stderr line, the JSON
//! error object, no password anywhere.

use crate::support::{Env, Run, BIN};

#[test]
fn ping_reports_latency_on_both_backends() {
    let env = Env::new("ping");
    for backend in ["redis", "fred"] {
        let doc = env.json(&["--backend", backend, "ping"]);
        assert!(doc["latency_ms"].as_f64().unwrap() >= 0.0, "{doc}");
        assert!(
            doc["server"].as_str().unwrap().starts_with("redis://"),
            "{doc}"
        );
        let run = env.run(&["--backend", backend, "ping"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.starts_with("PONG from redis://"), "{run:?}");
    }
}

#[test]
fn info_names_server_version_mode_and_prefix() {
    let env = Env::new("info");
    let doc = env.json(&["info"]);
    assert!(
        matches!(doc["kind"].as_str(), Some("Redis" | "Valkey")),
        "{doc}"
    );
    assert!(
        doc["version"].as_str().unwrap().split('.').count() == 3,
        "{doc}"
    );
    assert_eq!(doc["mode"], "standalone", "{doc}");
    assert_eq!(doc["prefix"], env.prefix.as_str(), "{doc}");
    assert_eq!(doc["backend"], "redis", "{doc}");
    assert!(doc["latency_ms"].is_number(), "{doc}");
    let run = env.run(&["info"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("mode:           standalone"), "{run:?}");
}

#[test]
fn an_unreachable_server_exits_3_named_without_its_password() {
    // Port 1 on loopback: nothing listens there, the connect is refused at once.
    let env = Env {
        url: "redis://:hunter2-secret@127.0.0.1:1".into(),
        prefix: "rustauth:".into(),
    };
    for backend in ["redis", "fred"] {
        let run = env.run(&["--backend", backend, "--timeout", "2", "--json", "ping"]);
        assert_eq!(run.code, 3, "{run:?}");
        assert!(
            !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
            "{run:?}"
        );
        assert!(run.stderr.starts_with("rustauth-kv: error: "), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains("127.0.0.1:1"), "{run:?}");
        let doc = run.json();
        assert_eq!(doc["error"]["kind"], "unavailable", "{doc}");
        assert_eq!(doc["error"]["exit_code"], 3, "{doc}");
        assert!(
            doc["error"]["message"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1:1"),
            "{doc}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new("usage");
    for args in [
        &["--json", "no-such-command"][..],
        &["--json", "ping", "--bogus"],
        &["--json", "--timeout", "0", "ping"],
        &["--json", "--backend", "mongo", "ping"],
        &["--json", "ratelimit", "peek", "b", "--window", "60"],
        &["--json", "clear", "no-such-namespace", "--yes"],
        &["--json", "--prefix", "", "ping"],
    ] {
        let run = env.run(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains("error"), "{args:?}: {run:?}");
        let doc = run.json();
        assert_eq!(doc["error"]["exit_code"], 2, "{args:?}: {doc}");
    }
    // No URL at all: a usage error naming the variables.
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("ping")
        .env_remove("REDIS_URL")
        .env_remove("RUSTAUTH_KV_URL");
    let run = Run::of(cmd);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("REDIS_URL") && run.stderr.contains("RUSTAUTH_KV_URL"),
        "{run:?}"
    );
}

#[test]
fn the_url_comes_from_the_environment_and_help_documents_exit_codes() {
    let env = Env::new("envurl");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--json", "ping"])
        .env_remove("RUSTAUTH_KV_URL")
        .env("REDIS_URL", &env.url);
    let run = Run::of(cmd);
    assert_eq!(run.code, 0, "{run:?}");
    // RUSTAUTH_KV_URL wins over REDIS_URL.
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--json", "ping"])
        .env("RUSTAUTH_KV_URL", &env.url)
        .env("REDIS_URL", "redis://127.0.0.1:1");
    assert_eq!(Run::of(cmd).code, 0);

    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--help")
        .env("RUSTAUTH_KV_URL", "redis://:hunter2@127.0.0.1:1");
    let run = Run::of(cmd);
    assert_eq!(run.code, 0, "{run:?}");
    for text in [
        "Exit codes:",
        "3  server unavailable",
        "--json",
        "REDIS_URL",
    ] {
        assert!(run.stdout.contains(text), "{text}: {run:?}");
    }
    assert!(
        !run.stdout.contains("hunter2"),
        "--help shows no env value: {run:?}"
    );
}
