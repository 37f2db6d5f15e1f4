//! The conformance suite of rustauth-kv: one list of cases, run against the memory store,
//! rustauth-redis and rustauth-fred on one real Redis server, and against the two mixes
//! (one client writes, the other reads), checking what the API returns *and* what is
//! physically stored.
//!
//! - [`server`]: starts a real `redis-server` (or uses `RUSTAUTH_REDIS_URL`);
//! - [`probe`]: a raw connection for checking key bytes, values, `TYPE` and `PTTL`;
//! - [`cluster`]: starts a real Redis Cluster (3 primaries, 1 replica each);
//! - [`cluster_guard`]: a connection wrapper that batches and refuses keys like a Redis
//!   Cluster (per hash slot, `CROSSSLOT`);
//! - [`context`]: topologies and the per-case stores;
//! - [`fault`]: a TCP proxy that injects network faults (reset, black hole, latency, a
//!   reply cut in half);
//! - [`cases`]: the cases, plain async functions;
//! - [`run`]: runs one case with a timeout, turning a panic into a report with the
//!   server's log tail.
//!
//! Cases are listed once, in [`for_each_storage_case`] and [`for_each_connection_case`];
//! `tests/it` turns the lists into one `#[tokio::test]` per case and topology, and the
//! `conformance` binary (behind `cargo xtask conformance`) into a table.

pub mod cases;
pub mod cluster;
pub mod cluster_guard;
#[cfg(feature = "testcontainers")]
pub mod containers;
pub mod context;
pub mod fault;
pub mod probe;
pub mod report;
pub mod run;
pub mod sentinel;
pub mod server;

pub use context::{BackendKind, Ctx, Topology};

/// Calls `$m!` with every storage case as `module::name`. Adding a case is one function
/// plus one line here.
#[macro_export]
macro_rules! for_each_storage_case {
    ($m:ident) => {
        $m! {
            basic::set_get_roundtrip,
            basic::set_with_ttl,
            basic::set_ttl_zero_deletes,
            basic::set_expiry_drop_and_keep,
            basic::invalid_input_rejected_before_io,
            basic::delete_reports_existence,
            basic::set_if_not_exists_rules,
            basic::take_returns_once,
            basic::compare_and_set_rules,
            basic::delete_if_value_rules,
            basic::get_many_and_delete_many,
            basic::values_are_binary_safe,
            basic::script_cache_flush_recovers,
            basic::wrong_type_keys_fail_and_stay_untouched,
            atomic::concurrent_set_if_not_exists_creates_once,
            atomic::concurrent_take_returns_once,
            atomic::concurrent_compare_and_set_applies_once,
            namespace::list_keys_sees_only_namespace,
            namespace::clear_only_namespace,
            namespace::glob_prefix_is_literal,
            namespace::prefixes_are_isolated,
            namespace::clear_200k_keys,
            namespace::better_auth_compat_flat_layout,
            better_auth::increment_sets_ttl_on_creation_only,
            better_auth::increment_concurrent_from_both_sides_is_exact,
            better_auth::better_auth_limiter_shares_one_record,
            better_auth::better_auth_sessions_layout_and_watermark,
            lock::concurrent_acquire_has_one_owner,
            lock::fencing_tokens_strictly_increase,
            lock::expired_lock_survives_old_owner,
            lock::lock_input_rejected_before_io,
            lock::run_exclusive_runs_once,
            lock::lock_corrupt_fence_counters_restart_at_the_floor,
            rate_limit::rate_limit_concurrent_consumes_admit_exactly_max,
            rate_limit::rate_limit_window_boundaries_follow_pttl,
            rate_limit::rate_limit_sides_agree_byte_for_byte,
            rate_limit::rate_limit_script_flush_recovers,
            rate_limit::rate_limit_server_clock_resists_skew,
            rate_limit::rate_limit_peek_cost_and_reset,
            rate_limit::rate_limit_blocked_cache_skips_round_trips,
            rate_limit::rate_limit_reads_existing_buckets,
            rate_limit::rate_limit_auth_paths_end_to_end,
            rate_limit::rate_limit_corrupt_counters_are_replaced,
            sessions::sessions_concurrent_creates_all_listed,
            sessions::sessions_refresh_racing_revoke_all,
            sessions::sessions_expired_never_listed_and_index_expires,
            sessions::sessions_values_read_identically,
            sessions::sessions_operations_and_layout,
            sessions::sessions_cap_evicts_soonest_expiring,
            sessions::sessions_hashed_tokens_at_rest,
        }
    };
}

/// Calls `$m!` with every connection case (server backends only) as `module::name`.
#[macro_export]
macro_rules! for_each_connection_case {
    ($m:ident) => {
        $m! {
            connection::url_forms_reach_the_server,
            connection::password_auth_and_redaction,
            connection::rediss_needs_a_tls_feature,
            connection::unreachable_server_fails_fast,
            connection::hung_server_times_out,
            connection::reconnects_after_restart,
            connection::wrong_type_is_a_server_error,
            concurrency::concurrent_callers_get_their_own_replies,
            concurrency::a_cancelled_caller_does_not_lose_the_others,
            health::ping_and_server_info,
            resilience::breaker_opens_on_a_hung_server_and_recovers,
            resilience::breaker_recovers_after_restart,
            lock::fencing_tokens_survive_flushdb_and_restart,
            connection::rate_limit_unavailable_policy,
            sessions::sessions_round_trips,
            faults::fault_matrix,
            faults::connect_timeout_is_kept_on_a_hung_server,
            faults::connect_errors_say_where,
            faults::connections_close_on_drop_and_close,
            facade::bundle_shares_one_connection_and_prefix,
            acl::acl_user_is_confined_to_its_prefix,
            observe::spans_metrics_and_degradation_events,
            observe::connection_loss_and_reconnect_are_counted_once,
            observe::idle_connection_killed_is_one_loss_and_one_reconnect,
            observe::opentelemetry_export,
            better_auth::better_auth_migration_keeps_ttls_and_is_idempotent,
        }
    };
}

/// Calls `$m!` with every Sentinel failover case as `module::name`; they run per backend
/// through Sentinel (`redis-sentinel`, `fred-sentinel`), each on its own deployment.
#[macro_export]
macro_rules! for_each_sentinel_case {
    ($m:ident) => {
        $m! {
            sentinel::sentinel_failover_graceful,
            sentinel::sentinel_failover_primary_killed,
            sentinel::sentinel_credentials_and_connect_errors,
        }
    };
}

/// Calls `$m!` with every case only a Redis Cluster has (per server backend, on a real
/// cluster), as `module::name`.
#[macro_export]
macro_rules! for_each_cluster_case {
    ($m:ident) => {
        $m! {
            cluster::cluster_clear_and_list_span_every_primary,
            cluster::cluster_slot_migration_under_load,
            cluster::cluster_failover_under_load,
            cluster::cluster_noscript_on_a_new_primary,
            cluster::cluster_scan_survives_a_failover_mid_walk,
        }
    };
}
