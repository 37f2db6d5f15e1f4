//! `clear`: the confirmation contract, `--rate`, and one million keys deleted with bounded
//! memory and visible progress.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Env, Run};

#[tokio::test]
async fn clear_without_yes_and_without_a_terminal_refuses() {
    let env = Env::new("clear-refuse");
    let probe = env.probe().await;
    probe.set(&env.key("secondary:k"), b"v", None).await;
    let run = env.run(&["--json", "clear", "secondary"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--yes"), "{run:?}");
    assert_eq!(run.json()["error"]["kind"], "usage");
    assert_eq!(
        probe.get(&env.key("secondary:k")).await.as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn clear_deletes_one_namespace_at_the_given_rate() {
    let env = Env::new("clear-rate");
    let probe = env.probe().await;
    let keys: Vec<_> = (0..30)
        .map(|i| env.key(&format!("rate-limit:b{i}")))
        .collect();
    probe
        .set_many(keys.iter().map(|k| (k.clone(), b"1".to_vec())))
        .await;
    probe.set(&env.key("secondary:kept"), b"v", None).await;
    probe.set(&env.key("rate-limitx:kept"), b"v", None).await;
    let started = Instant::now();
    let doc = env.json(&["clear", "rate-limit", "--yes", "--rate", "20"]);
    let elapsed = started.elapsed();
    assert_eq!(doc["deleted"], 30, "{doc}");
    assert_eq!(doc["namespace"], "rate-limit", "{doc}");
    // 30 keys at 20 per second: the second batch of 20 waits until 1 s has passed.
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    for k in &keys {
        assert_eq!(probe.get(k).await, None);
    }
    assert!(probe.get(&env.key("secondary:kept")).await.is_some());
    assert!(probe.get(&env.key("rate-limitx:kept")).await.is_some());
    // Again: nothing left, exit 0.
    let doc = env.json(&["clear", "rate-limit:", "-y"]);
    assert_eq!(doc["deleted"], 0, "{doc}");
}

/// Peak resident set of a running process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_of_a_million_keys_has_bounded_memory_and_reports_progress() {
    const N: usize = 1_000_000;
    let env = Env::new("clear-1m");
    let probe = env.probe().await;
    let load = Instant::now();
    let value = b"v".to_vec();
    probe
        .set_many((0..N).map(|i| (env.key(&format!("secondary:k:{i}")), value.clone())))
        .await;
    let outside = [
        env.key("rate-limit:kept"),
        env.key("secondaryx:kept"),
        env.key("session:kept"),
    ];
    for k in &outside {
        probe.set(k, b"kept", None).await;
    }
    eprintln!("loaded {N} keys in {:?}", load.elapsed());

    let mut cmd = env.command(&[
        "--json",
        "--progress",
        "always",
        "clear",
        "secondary",
        "--yes",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn rustauth-kv");
    let pid = child.id();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("clear of {N} keys did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    let out = child.wait_with_output().expect("output");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("cleared {N} keys in {elapsed:?}, peak RSS {peak} KiB");
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["deleted"], N as u64, "{doc}");
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("clear") && l.contains("deleted"))
        .collect();
    assert!(progress.len() >= 3, "several progress updates: {run:?}");
    assert!(
        progress.last().unwrap().contains(&format!("deleted {N}")),
        "{run:?}"
    );
    assert!(peak > 0, "VmHWM was read");
    assert!(
        peak < 100 * 1024,
        "peak RSS {peak} KiB: memory is not bounded by a page"
    );
    assert!(
        probe
            .keys_with_prefix(&env.key("secondary:"))
            .await
            .is_empty(),
        "every key of the namespace is gone"
    );
    for k in &outside {
        assert_eq!(probe.get(k).await.as_deref(), Some(&b"kept"[..]));
    }
}
