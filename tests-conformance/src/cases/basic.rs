//! Single-key operations: what each returns, and the exact bytes and TTL it leaves.

use std::time::Duration;

use kv_contract::ttl::MAX_TTL;
use kv_contract::{Bytes, ErrorKind, SecondaryStorageExt};

use super::{assert_absent, assert_prefix_empty, assert_stored};
use crate::context::Ctx;

fn all_bytes() -> Bytes {
    (0u8..=255).collect::<Vec<u8>>().into()
}

/// `set` without TTL stores the exact bytes with no expiry; `get` on the other backend
/// reads them back; an empty value is a value.
pub async fn set_get_roundtrip(ctx: Ctx) {
    ctx.a.set("k", all_bytes(), None).await.unwrap();
    assert_eq!(ctx.b.get("k").await.unwrap(), Some(all_bytes()));
    assert_stored(&ctx, "k", &all_bytes(), None).await;
    assert_eq!(
        ctx.probe.get(&ctx.physical("k")).await.unwrap().len(),
        256,
        "key bytes are {{prefix}}secondary:k"
    );
    ctx.a.set("empty", Bytes::new(), None).await.unwrap();
    assert_eq!(ctx.b.get("empty").await.unwrap(), Some(Bytes::new()));
    assert_stored(&ctx, "empty", b"", None).await;
    assert_eq!(ctx.b.get("missing").await.unwrap(), None);
}

/// `set` with a TTL stores a `PX` expiry; sub-millisecond TTLs round up, never to 0.
pub async fn set_with_ttl(ctx: Ctx) {
    ctx.a
        .set("k", "v".into(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_stored(&ctx, "k", b"v", Some(55_000..=60_000)).await;
    assert_eq!(ctx.b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    ctx.a
        .set("tiny", "v".into(), Some(Duration::from_micros(1500)))
        .await
        .unwrap();
    // 2 ms: present now or already gone, but never stored without expiry.
    match ctx.probe.pttl(&ctx.physical("tiny")).await {
        crate::probe::Pttl::Ms(ms) => assert!(ms <= 2, "1.5 ms rounds up to 2 ms, got {ms}"),
        crate::probe::Pttl::Missing => {}
        other => panic!("sub-ms TTL stored as {other:?}"),
    }
}

/// A TTL of 0 means "already expired": `set` deletes the key and stores nothing.
pub async fn set_ttl_zero_deletes(ctx: Ctx) {
    ctx.a.set("k", "v".into(), None).await.unwrap();
    ctx.b
        .set("k", "w".into(), Some(Duration::ZERO))
        .await
        .unwrap();
    assert_absent(&ctx, "k").await;
    assert_eq!(ctx.a.get("k").await.unwrap(), None);
    ctx.b
        .set("never", "w".into(), Some(Duration::ZERO))
        .await
        .unwrap();
    assert_prefix_empty(&ctx).await;
}

/// `set(.., None)` drops an existing expiry (plain `SET`); `set_keep_ttl` keeps it.
pub async fn set_expiry_drop_and_keep(ctx: Ctx) {
    let minute = Some(Duration::from_secs(60));
    ctx.a.set("drop", "v1".into(), minute).await.unwrap();
    ctx.b.set("drop", "v2".into(), None).await.unwrap();
    assert_stored(&ctx, "drop", b"v2", None).await;

    ctx.a.set("keep", "v1".into(), minute).await.unwrap();
    ctx.b.set_keep_ttl("keep", "v2".into()).await.unwrap();
    assert_stored(&ctx, "keep", b"v2", Some(55_000..=60_000)).await;
    assert_eq!(
        ctx.a.get("keep").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );

    ctx.a.set_keep_ttl("new", "v".into()).await.unwrap();
    assert_stored(&ctx, "new", b"v", None).await;
}

/// Bad input is rejected before any I/O, with an error naming the value.
pub async fn invalid_input_rejected_before_io(ctx: Ctx) {
    let too_long = MAX_TTL + Duration::from_millis(1);
    for result in [
        ctx.a.set("k", "v".into(), Some(too_long)).await.err(),
        ctx.a
            .set_if_not_exists("k", "v".into(), Some(too_long))
            .await
            .err(),
        ctx.a
            .compare_and_set("k", None, "v".into(), Some(too_long))
            .await
            .err(),
    ] {
        let e = result.expect("a TTL above MAX_TTL must be rejected");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(&format!("{too_long:?}")), "{e}");
    }
    let e = ctx.b.get("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = ctx.b.set("", "v".into(), None).await.unwrap_err();
    assert!(e.to_string().contains("empty secondary key"), "{e}");
    let e = ctx.a.get_many(&["ok", ""]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_prefix_empty(&ctx).await;
}

/// `delete` reports whether the key existed.
pub async fn delete_reports_existence(ctx: Ctx) {
    ctx.a.set("k", "v".into(), None).await.unwrap();
    assert!(ctx.b.delete("k").await.unwrap());
    assert!(!ctx.a.delete("k").await.unwrap());
    assert_absent(&ctx, "k").await;
}

/// `set_if_not_exists` creates once, with its TTL; TTL 0 creates nothing and touches
/// nothing.
pub async fn set_if_not_exists_rules(ctx: Ctx) {
    let minute = Some(Duration::from_secs(60));
    assert!(ctx
        .a
        .set_if_not_exists("k", "v1".into(), minute)
        .await
        .unwrap());
    assert!(!ctx
        .b
        .set_if_not_exists("k", "v2".into(), None)
        .await
        .unwrap());
    assert_stored(&ctx, "k", b"v1", Some(55_000..=60_000)).await;
    assert!(!ctx
        .b
        .set_if_not_exists("k", "v3".into(), Some(Duration::ZERO))
        .await
        .unwrap());
    assert_stored(&ctx, "k", b"v1", Some(55_000..=60_000)).await;
    assert!(!ctx
        .a
        .set_if_not_exists("zero", "v".into(), Some(Duration::ZERO))
        .await
        .unwrap());
    assert_absent(&ctx, "zero").await;
    assert!(ctx
        .b
        .set_if_not_exists("plain", "v".into(), None)
        .await
        .unwrap());
    assert_stored(&ctx, "plain", b"v", None).await;
}

/// `take` returns the value once and leaves nothing behind.
pub async fn take_returns_once(ctx: Ctx) {
    ctx.a
        .set("k", "v".into(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(ctx.b.take("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(ctx.a.take("k").await.unwrap(), None);
    assert_absent(&ctx, "k").await;
    assert_eq!(ctx.b.take("missing").await.unwrap(), None);
}

/// `compare_and_set`: every branch of the condition, and the TTL table for the write.
pub async fn compare_and_set_rules(ctx: Ctx) {
    let minute = Some(Duration::from_secs(60));
    assert!(ctx
        .a
        .compare_and_set("k", None, "v1".into(), None)
        .await
        .unwrap());
    assert_stored(&ctx, "k", b"v1", None).await;
    assert!(!ctx
        .b
        .compare_and_set("k", None, "x".into(), None)
        .await
        .unwrap());
    assert!(!ctx
        .b
        .compare_and_set("k", Some(b"v1\0"), "x".into(), None)
        .await
        .unwrap());
    assert_stored(&ctx, "k", b"v1", None).await;
    assert!(ctx
        .b
        .compare_and_set("k", Some(b"v1"), "v2\0bin".into(), minute)
        .await
        .unwrap());
    assert_stored(&ctx, "k", b"v2\0bin", Some(55_000..=60_000)).await;
    assert!(ctx
        .a
        .compare_and_set("k", Some(b"v2\0bin"), "v3".into(), None)
        .await
        .unwrap());
    assert_stored(&ctx, "k", b"v3", None).await;
    assert!(ctx
        .a
        .compare_and_set("k", Some(b"v3"), "gone".into(), Some(Duration::ZERO))
        .await
        .unwrap());
    assert_absent(&ctx, "k").await;
    assert!(!ctx
        .b
        .compare_and_set("k", Some(b"v3"), "x".into(), None)
        .await
        .unwrap());
    assert!(ctx
        .b
        .compare_and_set("z", None, "x".into(), Some(Duration::ZERO))
        .await
        .unwrap());
    assert_prefix_empty(&ctx).await;
}

/// `delete_if_value` deletes only the expected value.
pub async fn delete_if_value_rules(ctx: Ctx) {
    ctx.a.set("k", "v1".into(), None).await.unwrap();
    assert!(!ctx.b.delete_if_value("k", b"v2").await.unwrap());
    assert_stored(&ctx, "k", b"v1", None).await;
    assert!(ctx.b.delete_if_value("k", b"v1").await.unwrap());
    assert_absent(&ctx, "k").await;
    assert!(!ctx.a.delete_if_value("k", b"v1").await.unwrap());
}

/// `get_many` keeps order and reports missing keys; `delete_many` counts what existed;
/// empty inputs send nothing (never a zero-argument `MGET`/`DEL`).
pub async fn get_many_and_delete_many(ctx: Ctx) {
    ctx.a.set("k1", "1".into(), None).await.unwrap();
    ctx.a.set("k3", "3".into(), None).await.unwrap();
    let got = ctx.b.get_many(&["k1", "k2", "k3"]).await.unwrap();
    assert_eq!(
        got,
        vec![Some(Bytes::from("1")), None, Some(Bytes::from("3"))]
    );
    assert!(ctx.b.get_many(&[]).await.unwrap().is_empty());
    assert_eq!(ctx.a.delete_many(&[]).await.unwrap(), 0);
    assert_eq!(ctx.b.delete_many(&["k1", "k2", "k3"]).await.unwrap(), 2);
    assert_prefix_empty(&ctx).await;
}

/// Values are binary-safe; the string conveniences refuse non-UTF-8 with a clear error.
pub async fn values_are_binary_safe(ctx: Ctx) {
    let raw: &[u8] = b"\x00\r\n\xff\xfe*?[]\\";
    ctx.a
        .set("bin", Bytes::from_static(raw), None)
        .await
        .unwrap();
    assert_eq!(ctx.b.get("bin").await.unwrap().as_deref(), Some(raw));
    assert_stored(&ctx, "bin", raw, None).await;
    let e = ctx.b.get_string("bin").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedData, "{e}");
    assert!(e.to_string().contains("\"bin\""), "{e}");
    ctx.a
        .set_string("text", "héllo wörld ✓", None)
        .await
        .unwrap();
    assert_eq!(
        ctx.b.get_string("text").await.unwrap().as_deref(),
        Some("héllo wörld ✓")
    );
}

/// After `SCRIPT FLUSH` (or a restart), the scripted operations reload their script and
/// succeed without failing the caller.
pub async fn script_cache_flush_recovers(ctx: Ctx) {
    ctx.a.set("k", "v1".into(), None).await.unwrap();
    assert!(ctx
        .a
        .compare_and_set("k", Some(b"v1"), "v2".into(), None)
        .await
        .unwrap());
    ctx.probe.script_flush().await;
    assert!(ctx
        .b
        .compare_and_set("k", Some(b"v2"), "v3".into(), None)
        .await
        .unwrap());
    ctx.probe.script_flush().await;
    assert!(ctx.a.delete_if_value("k", b"v3").await.unwrap());
    assert_absent(&ctx, "k").await;
}

/// A key of another type (a hash, planted raw) under a store's key reads as the server
/// reads it, on every topology: `get` and `take` fail with `WRONGTYPE` as
/// `ErrorKind::Server`; `delete_if_value` and `compare_and_set` (scripts, whose first
/// command is `GET`) with `WRONGTYPE` as `ErrorKind::Script`; and the foreign key is left
/// exactly as it was (fields and TTL).
pub async fn wrong_type_keys_fail_and_stay_untouched(ctx: Ctx) {
    use crate::probe::{Pttl, Stored};
    let key = ctx.physical("foreign");
    ctx.probe
        .set_hash(&key, &[("f", b"v")], Some(Duration::from_secs(60)))
        .await;
    for (side, store) in [("a", &ctx.a), ("b", &ctx.b)] {
        let results = [
            (
                "get",
                store.get("foreign").await.map(drop),
                ErrorKind::Server,
            ),
            (
                "take",
                store.take("foreign").await.map(drop),
                ErrorKind::Server,
            ),
            (
                "delete_if_value",
                store.delete_if_value("foreign", b"v").await.map(drop),
                ErrorKind::Script,
            ),
            (
                "compare_and_set(None)",
                store
                    .compare_and_set("foreign", None, "new".into(), None)
                    .await
                    .map(drop),
                ErrorKind::Script,
            ),
            (
                "compare_and_set(Some)",
                store
                    .compare_and_set("foreign", Some(b"v"), "new".into(), None)
                    .await
                    .map(drop),
                ErrorKind::Script,
            ),
        ];
        for (call, result, kind) in results {
            let e = result.expect_err(&format!("{call} on {side} over a hash"));
            assert_eq!(
                (e.kind(), e.server_code()),
                (kind, Some("WRONGTYPE")),
                "{call} on {side}: {e}"
            );
        }
    }
    let want = Stored::Hash([(b"f".to_vec(), b"v".to_vec())].into());
    assert_eq!(ctx.probe.value(&key).await, Some(want), "hash untouched");
    match ctx.probe.pttl(&key).await {
        Pttl::Ms(ms) if ms > 50_000 => {}
        other => panic!("the hash keeps its TTL, got {other:?}"),
    }
    // MGET reads another type as nil; SET NX sees the key; DEL removes it.
    assert_eq!(ctx.b.get_many(&["foreign"]).await.unwrap(), vec![None]);
    assert!(!ctx
        .a
        .set_if_not_exists("foreign", "x".into(), None)
        .await
        .unwrap());
    assert!(ctx.a.delete("foreign").await.unwrap());
    assert_prefix_empty(&ctx).await;
}
