//! Cases only a Redis Cluster has, per server backend: `list_keys`/`clear` over every
//! primary, a slot migration under a concurrent workload, a primary failover (graceful
//! and by SIGKILL) under load, and `NOSCRIPT` on a promoted primary. Each is bounded
//! (about 30 s at most) and records its figures through [`report`].
//!
//! The shared cluster serves the read-mostly case; the cases that reshard or kill start
//! a cluster of their own, so they never disturb the storage cases running meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_contract::slot::key_slot;
use kv_contract::{
    Bytes, ConnectionOptions, SecondaryStorage, ServerStorage, SharedConnection, StorageOptions,
};

use crate::cluster::{node_command, RedisCluster};
use crate::context::{unique_prefix, BackendKind};
use crate::probe::Probe;
use crate::report;

async fn connect(kind: BackendKind, cluster_url: &str) -> SharedConnection {
    let options = ConnectionOptions::builder(cluster_url)
        .command_timeout(Duration::from_secs(1))
        .build()
        .expect("cluster URL");
    let conn = kind
        .connect(&options)
        .await
        .unwrap_or_else(|e| panic!("{} cannot connect to the cluster: {e}", kind.name()));
    assert!(conn.is_cluster(), "a cluster connection says so");
    conn
}

fn store(conn: &SharedConnection, case: &str) -> ServerStorage {
    let options = StorageOptions::builder()
        .prefix(unique_prefix(case))
        .build()
        .expect("prefix");
    ServerStorage::new(conn.clone(), options)
}

/// One own cluster at a time per process (and not beside a Sentinel failover: see
/// [`crate::run::HEAVY`]): six servers and a workload each would otherwise pile up on a
/// small CI machine and slow the timing-sensitive cases running meanwhile.
async fn own_cluster() -> (tokio::sync::MutexGuard<'static, ()>, RedisCluster) {
    let gate = crate::run::HEAVY.lock().await;
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("cannot start a Redis Cluster: {e}"));
    (gate, cluster)
}

/// `list_keys`, `get_many`, `delete_many` and `clear` with keys in every slot range:
/// every primary holds some, one `MGET`/`DEL` of 3,000 keys crosses every slot.
pub async fn cluster_clear_and_list_span_every_primary(kind: BackendKind) {
    let cluster = crate::cluster::shared();
    let conn = connect(kind, &cluster.url()).await;
    let s = store(&conn, "span");
    let n = 3000;
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    for k in &keys {
        s.set(
            k,
            Bytes::from(format!("v-{k}")),
            Some(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    }
    // Every primary holds part of the namespace.
    let mut prefix = s.options().key("x").unwrap();
    prefix.pop();
    let mut per_node = Vec::new();
    for port in cluster.primary_ports().unwrap() {
        let node = Probe::connect(&format!("redis://127.0.0.1:{port}")).await;
        let found = node.keys_with_prefix(&prefix).await.len();
        assert!(found > 0, "primary {port} holds none of the keys");
        per_node.push(found);
    }
    assert_eq!(per_node.iter().sum::<usize>(), n, "{per_node:?}");

    let mut listed = s.list_keys().await.unwrap();
    listed.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(listed, want, "list_keys sees every primary");

    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let started = Instant::now();
    let values = s.get_many(&refs).await.unwrap();
    let get_many_ms = started.elapsed().as_secs_f64() * 1e3;
    for (k, v) in keys.iter().zip(&values) {
        assert_eq!(v.as_deref(), Some(format!("v-{k}").as_bytes()), "{k}");
    }
    assert_eq!(s.delete_many(&refs[..1500]).await.unwrap(), 1500);
    let started = Instant::now();
    assert_eq!(s.clear().await.unwrap(), 1500);
    let clear_ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(s.list_keys().await.unwrap().is_empty());
    let probe = Probe::connect_cluster(&cluster.node_urls()).await;
    assert!(probe.keys_with_prefix(&prefix).await.is_empty());
    let line = format!(
        "cluster span [{}]: {n} keys over primaries {per_node:?}; get_many of {n} {get_many_ms:.1} ms; \
         clear of 1500 {clear_ms:.1} ms",
        kind.name()
    );
    println!("{line}");
    report::metric(line);
}

/// A concurrent workload of writes and reads on the keys of one slot while that slot
/// moves to another primary (`SETSLOT IMPORTING/MIGRATING`, `MIGRATE` in batches,
/// `SETSLOT NODE`): calls follow `ASK`/`MOVED`; failed calls are counted (target 0) and
/// every key holds its last acknowledged value afterwards.
pub async fn cluster_slot_migration_under_load(kind: BackendKind) {
    let (_gate, cluster) = own_cluster().await;
    let conn = connect(kind, &cluster.url()).await;
    let s = Arc::new(store(&conn, "migrate"));
    // Keys of one slot: one hash tag.
    let keys: Vec<String> = (0..300).map(|i| format!("{{mig}}:{i}")).collect();
    for k in &keys {
        s.set(k, Bytes::from_static(b"v0"), None).await.unwrap();
    }
    let slot = key_slot(&s.options().key(&keys[0]).unwrap());
    let source = cluster.owner_of(slot).unwrap();
    let target = *cluster
        .primary_ports()
        .unwrap()
        .iter()
        .find(|p| **p != source)
        .unwrap();
    let (source_id, target_id) = (
        cluster.node_id(source).unwrap(),
        cluster.node_id(target).unwrap(),
    );

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (s, stop, failed, calls) = (s.clone(), stop.clone(), failed.clone(), calls.clone());
        let mine: Vec<String> = keys.iter().skip(w).step_by(workers).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let mut acked: HashMap<String, String> = HashMap::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for k in &mine {
                    n += 1;
                    let v = format!("w{w}-{n}");
                    calls.fetch_add(2, Ordering::Relaxed);
                    match s.set(k, Bytes::from(v.clone()), None).await {
                        Ok(()) => {
                            acked.insert(k.clone(), v.clone());
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("set {k} during migration: {e}");
                        }
                    }
                    match s.get(k).await {
                        Ok(got) if got.as_deref() == acked.get(k).map(|a| a.as_bytes()) => {}
                        Ok(got) => {
                            panic!("{k}: read {got:?} after acknowledged {:?}", acked.get(k))
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("get {k} during migration: {e}");
                        }
                    }
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let slot_s = slot.to_string();
    let migrate = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        node_command(
            target,
            &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &source_id],
        )?;
        node_command(
            source,
            &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &target_id],
        )?;
        let mut moved = 0;
        loop {
            let mut conn = redis::Client::open(format!("redis://127.0.0.1:{source}"))
                .and_then(|c| c.get_connection())
                .map_err(|e| e.to_string())?;
            let batch: Vec<Vec<u8>> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(20)
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            if batch.is_empty() {
                break;
            }
            let mut cmd = redis::cmd("MIGRATE");
            cmd.arg("127.0.0.1")
                .arg(target)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS");
            for k in &batch {
                cmd.arg(k);
            }
            let _: redis::Value = cmd.query(&mut conn).map_err(|e| e.to_string())?;
            moved += batch.len();
            // Let the workload run into ASK redirections between batches.
            std::thread::sleep(Duration::from_millis(20));
        }
        for port in [target, source] {
            node_command(port, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &target_id])?;
        }
        Ok(moved)
    })
    .await
    .expect("migration task")
    .unwrap_or_else(|e| panic!("migrating slot {slot}: {e}"));
    let migration_ms = started.elapsed().as_millis();
    // Keep the load on a little after the slot moved (MOVED, slot map refresh).
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = HashMap::new();
    for t in tasks {
        acked.extend(t.await.expect("worker"));
    }
    assert_eq!(cluster.owner_of(slot).unwrap(), target, "the slot moved");
    // After the migration every key answers again within a bound (fred 10.1 unpatched
    // stopped answering here altogether; see rustauth-fred's cluster module).
    let settle = Instant::now();
    for k in &keys {
        loop {
            match s.get(k).await {
                Ok(_) => break,
                Err(e) if settle.elapsed() < Duration::from_secs(15) => {
                    eprintln!("get {k} after the migration: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{k} unreachable 15 s after the migration: {e}"),
            }
        }
    }
    let settle_ms = settle.elapsed().as_millis();
    let probe = Probe::connect(&format!("redis://127.0.0.1:{target}")).await;
    for k in &keys {
        let physical = s.options().key(k).unwrap();
        let want = acked.get(k).cloned().unwrap_or_else(|| "v0".into());
        assert_eq!(
            probe.get(&physical).await.as_deref(),
            Some(want.as_bytes()),
            "{k} on the new owner"
        );
        assert_eq!(
            s.get(k).await.unwrap().as_deref(),
            Some(want.as_bytes()),
            "{k}"
        );
    }
    let failed = failed.load(Ordering::Relaxed);
    let line = format!(
        "cluster slot migration [{}]: slot {slot} ({migrate} keys) {source}->{target} in {migration_ms} ms \
         under {} calls from {workers} workers; failed calls {failed}; all keys answering {settle_ms} ms after",
        kind.name(),
        calls.load(Ordering::Relaxed),
    );
    println!("{line}");
    report::metric(line);
    assert_eq!(failed, 0, "calls failed during the migration");
}

/// What a failover under load measured.
struct FailoverFigures {
    failed: u64,
    lost: usize,
    recovery: Option<Duration>,
    acked: usize,
}

/// Writers on keys of every slot while the primary of one slot is failed over: gracefully
/// (`CLUSTER FAILOVER` on its replica) or by SIGKILL. Measures the time from the fault
/// until a write to that slot succeeds again, the failed calls, and acknowledged writes
/// lost (Redis replicates asynchronously).
async fn failover_under_load(kind: BackendKind, kill: bool) -> FailoverFigures {
    let (_gate, mut cluster) = own_cluster().await;
    let conn = connect(kind, &cluster.url()).await;
    let s = Arc::new(store(&conn, "failover"));
    let keys: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    let victim_key = keys[0].clone();
    let victim_slot = key_slot(&s.options().key(&victim_key).unwrap());
    let primary = cluster.owner_of(victim_slot).unwrap();
    let primary_id = cluster.node_id(primary).unwrap();
    let replica = cluster
        .ports()
        .into_iter()
        .find(|p| {
            node_command(*p, &["INFO", "replication"])
                .is_ok_and(|i| i.contains(&format!("master_port:{primary}")))
        })
        .expect("the primary has a replica");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let fault_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let recovered_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let workers = 4;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (s, stop, failed) = (s.clone(), stop.clone(), failed.clone());
        let (fault_at, recovered_at) = (fault_at.clone(), recovered_at.clone());
        let mut mine: Vec<String> = keys.iter().skip(w).step_by(workers).cloned().collect();
        if w == 0 {
            mine.insert(0, victim_key.clone());
        }
        let victim_key = victim_key.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked: HashMap<String, String> = HashMap::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for k in &mine {
                    n += 1;
                    let v = format!("w{w}-{n}");
                    match s.set(k, Bytes::from(v.clone()), None).await {
                        Ok(()) => {
                            acked.insert(k.clone(), v);
                            if *k == victim_key {
                                let fault = *fault_at.lock().unwrap();
                                let mut rec = recovered_at.lock().unwrap();
                                if fault.is_some() && rec.is_none() {
                                    *rec = Some(Instant::now());
                                }
                            }
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    *fault_at.lock().unwrap() = Some(Instant::now());
    if kill {
        cluster.kill(primary);
    } else {
        node_command(replica, &["CLUSTER", "FAILOVER"]).expect("CLUSTER FAILOVER");
    }
    // Wait (bounded) until the victim slot accepts writes again through the client.
    let deadline = Instant::now() + Duration::from_secs(25);
    while recovered_at.lock().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = HashMap::new();
    for t in tasks {
        acked.extend(t.await.expect("worker"));
    }
    let recovery = recovered_at
        .lock()
        .unwrap()
        .zip(*fault_at.lock().unwrap())
        .map(|(r, f)| r - f);
    // Lost = acknowledged last value not what the cluster holds now (read raw).
    let probe = Probe::connect_cluster(&cluster.node_urls()).await;
    let mut lost = 0;
    for (k, v) in &acked {
        let physical = s.options().key(k).unwrap();
        if probe.get(&physical).await.as_deref() != Some(v.as_bytes()) {
            lost += 1;
        }
    }
    let _ = primary_id;
    FailoverFigures {
        failed: failed.load(Ordering::Relaxed),
        lost,
        recovery,
        acked: acked.len(),
    }
}

/// A graceful failover (`CLUSTER FAILOVER` on the replica) and a SIGKILL of a primary,
/// under load: the same client recovers both without being recreated; figures printed.
pub async fn cluster_failover_under_load(kind: BackendKind) {
    for kill in [false, true] {
        let how = if kill { "SIGKILL" } else { "CLUSTER FAILOVER" };
        let f = failover_under_load(kind, kill).await;
        let line = format!(
            "cluster failover [{}] by {how}: recovery {}; failed calls {}; acknowledged writes lost {} of {} keys",
            kind.name(),
            f.recovery
                .map_or("none within 25 s".into(), |d| format!("{} ms", d.as_millis())),
            f.failed,
            f.lost,
            f.acked,
        );
        println!("{line}");
        report::metric(line);
        assert!(
            f.recovery.is_some(),
            "[{}] writes to the failed-over slot never succeeded again ({how})",
            kind.name()
        );
        if !kill {
            assert_eq!(f.lost, 0, "a graceful failover loses no acknowledged write");
        }
    }
}

/// A replica promoted by `CLUSTER FAILOVER` has never cached the stores' scripts
/// (`SCRIPT EXISTS` says 0): a script call there gets `NOSCRIPT` and the `EVAL` fallback
/// runs it once; the next call finds it cached.
pub async fn cluster_noscript_on_a_new_primary(kind: BackendKind) {
    let (_gate, cluster) = own_cluster().await;
    let conn = connect(kind, &cluster.url()).await;
    let s = store(&conn, "noscript");
    s.set("k", Bytes::from_static(b"v0"), None).await.unwrap();
    assert!(s
        .compare_and_set("k", Some(b"v0"), Bytes::from_static(b"v1"), None)
        .await
        .unwrap());
    let slot = key_slot(&s.options().key("k").unwrap());
    let primary = cluster.owner_of(slot).unwrap();
    let replica = cluster
        .ports()
        .into_iter()
        .find(|p| {
            node_command(*p, &["INFO", "replication"])
                .is_ok_and(|i| i.contains(&format!("master_port:{primary}")))
        })
        .expect("a replica");
    let sha = kv_contract::script::COMPARE_AND_SET.sha1().to_owned();
    let exists = |port: u16| node_command(port, &["SCRIPT", "EXISTS", &sha]);
    assert!(
        exists(replica).unwrap().to_lowercase().contains("int(0)"),
        "the replica has not cached the script (scripts replicate as effects)"
    );
    let replica_c = replica;
    tokio::task::spawn_blocking(move || {
        node_command(replica_c, &["CLUSTER", "FAILOVER"]).expect("CLUSTER FAILOVER")
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.owner_of(slot).ok() != Some(replica) {
        assert!(Instant::now() < deadline, "the replica was not promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let mut attempts = 0;
    let swapped = loop {
        attempts += 1;
        match s
            .compare_and_set("k", Some(b"v1"), Bytes::from_static(b"v2"), None)
            .await
        {
            Ok(b) => break b,
            // The client may still send to the old primary until it sees MOVED.
            Err(e) if attempts < 50 && e.is_unavailable() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("compare_and_set on the new primary: {e}"),
        }
    };
    assert!(swapped, "the swap applied on the new primary");
    assert!(
        exists(replica).unwrap().to_lowercase().contains("int(1)"),
        "EVAL cached it"
    );
    let probe = Probe::connect(&format!("redis://127.0.0.1:{replica}")).await;
    assert_eq!(
        probe.get(&s.options().key("k").unwrap()).await.as_deref(),
        Some(&b"v2"[..])
    );
    let line = format!(
        "cluster NOSCRIPT on a new primary [{}]: recovered by EVAL in {} ms ({attempts} call(s))",
        kind.name(),
        started.elapsed().as_millis()
    );
    println!("{line}");
    report::metric(line);
}

/// A SCAN walk over every primary with a failover in the middle of it: the changed slot
/// map restarts the walk (`kv_contract::cluster`), and every key that existed throughout
/// is returned.
pub async fn cluster_scan_survives_a_failover_mid_walk(kind: BackendKind) {
    let (_gate, cluster) = own_cluster().await;
    let conn = connect(kind, &cluster.url()).await;
    let s = store(&conn, "scanfo");
    let n = 600;
    for i in 0..n {
        s.set(&format!("k{i}"), Bytes::from_static(b"v"), None)
            .await
            .unwrap();
    }
    let mut prefix = s.options().key("x").unwrap();
    prefix.pop();
    let mut pattern = kv_contract::glob::escape(&prefix);
    pattern.push(b'*');
    let mut seen = std::collections::HashSet::new();
    let mut from = kv_contract::wire::ScanCursor::default();
    let mut pages = 0;
    // Walk into the second primary before the failover.
    let first_port = cluster.primary_ports().unwrap()[0];
    loop {
        let page = conn.scan_page(from, &pattern, 20).await.unwrap();
        pages += 1;
        seen.extend(page.keys);
        let Some(next) = page.next else { break };
        from = next;
        if pages == 3 {
            let replica = cluster
                .ports()
                .into_iter()
                .find(|p| {
                    node_command(*p, &["INFO", "replication"])
                        .is_ok_and(|i| i.contains(&format!("master_port:{first_port}")))
                })
                .expect("a replica");
            node_command(replica, &["CLUSTER", "FAILOVER"]).expect("CLUSTER FAILOVER");
            let deadline = Instant::now() + Duration::from_secs(20);
            while !cluster.primary_ports().unwrap().contains(&replica) {
                assert!(Instant::now() < deadline, "the replica was not promoted");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert!(pages < 10_000, "the walk does not end");
    }
    let missing = (0..n)
        .filter(|i| !seen.contains(&Bytes::from(s.options().key(&format!("k{i}")).unwrap())))
        .count();
    let line = format!(
        "cluster SCAN with a failover mid-walk [{}]: {pages} pages, {} distinct keys of {n}, {missing} missing",
        kind.name(),
        seen.len()
    );
    println!("{line}");
    report::metric(line);
    assert_eq!(missing, 0, "keys that existed throughout were missed");
}
