use std::time::Duration;

use tonic::Code;

use super::*;

/// The value of the sample line that starts with `series` exactly.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[test]
fn grpc_codes_use_go_names() {
    let expected = [
        (Code::Ok, "OK"),
        (Code::Cancelled, "Canceled"),
        (Code::InvalidArgument, "InvalidArgument"),
        (Code::DeadlineExceeded, "DeadlineExceeded"),
        (Code::NotFound, "NotFound"),
        (Code::PermissionDenied, "PermissionDenied"),
        (Code::FailedPrecondition, "FailedPrecondition"),
        (Code::ResourceExhausted, "ResourceExhausted"),
        (Code::Unavailable, "Unavailable"),
        (Code::Unauthenticated, "Unauthenticated"),
        (Code::Internal, "Internal"),
    ];
    for (code, name) in expected {
        assert_eq!(GrpcCode(code).as_str(), name);
    }
}

#[test]
fn operations_and_caches_are_closed_sets() {
    let ops: Vec<&str> = VaultOperation::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(ops, ["login", "read", "write", "renew", "lookup"]);
    let caches: Vec<&str> = CacheKind::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(caches, ["token", "response", "lease"]);
}

#[test]
fn every_family_is_declared_once() {
    let metrics = Metrics::new();
    // Families with free labels appear only once they have a series.
    metrics.mount(Code::Ok, Duration::from_millis(1));
    metrics.vault_request(
        VaultOperation::Read,
        VaultStatus::Http(200),
        Duration::from_millis(1),
    );
    let text = metrics.encode();
    for (name, kind) in [
        ("vault_csi_mount_duration_seconds", "histogram"),
        ("vault_csi_mounts", "counter"),
        ("vault_csi_vault_requests", "counter"),
        ("vault_csi_vault_request_duration_seconds", "histogram"),
        ("vault_csi_vault_logins", "counter"),
        ("vault_csi_cache_hits", "counter"),
        ("vault_csi_cache_misses", "counter"),
        ("vault_csi_cache_coalesced", "counter"),
        ("vault_csi_leases_held", "gauge"),
        ("vault_csi_leases_renewed", "counter"),
        ("vault_csi_leases_reissued", "counter"),
        ("vault_csi_stale_responses", "counter"),
        ("vault_csi_rotation_failures", "counter"),
        ("vault_csi_mounts_in_flight", "gauge"),
        ("vault_csi_vault_requests_in_flight", "gauge"),
        ("vault_csi_vault_requests_waiting", "gauge"),
        ("vault_csi_runtime_tasks", "gauge"),
    ] {
        let declaration = format!("# TYPE {name} {kind}\n");
        assert_eq!(text.matches(&declaration).count(), 1, "{name}:\n{text}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name} help");
    }
    // The library adds `_total` once; a doubled suffix means a name was
    // given with it.
    assert!(!text.contains("_total_total"), "{text}");
    assert!(text.contains("# UNIT vault_csi_mount_duration_seconds seconds\n"));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn fixed_series_exist_before_any_event() {
    let text = Metrics::new().encode();
    assert_eq!(sample(&text, "vault_csi_vault_logins_total"), Some(0.0));
    assert_eq!(sample(&text, "vault_csi_leases_held"), Some(0.0));
    assert_eq!(
        sample(&text, "vault_csi_cache_misses_total{cache=\"lease\"}"),
        Some(0.0)
    );
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn records_mounts_with_code_and_duration() {
    let metrics = Metrics::new();
    metrics.mount(Code::Ok, Duration::from_millis(3));
    metrics.mount(Code::Ok, Duration::from_millis(300));
    metrics.mount(Code::NotFound, Duration::from_millis(20));
    let text = metrics.encode();
    assert_eq!(
        sample(&text, "vault_csi_mounts_total{code=\"OK\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "vault_csi_mounts_total{code=\"NotFound\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "vault_csi_mount_duration_seconds_count{code=\"OK\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "vault_csi_mount_duration_seconds_bucket{le=\"0.005\",code=\"OK\"}"
        ),
        Some(1.0),
        "{text}"
    );
    let sum = sample(&text, "vault_csi_mount_duration_seconds_sum{code=\"OK\"}").unwrap();
    assert!((sum - 0.303).abs() < 1e-9, "{sum}");
}

#[test]
fn a_dropped_timer_counts_as_canceled_and_finish_counts_once() {
    let metrics = Metrics::new();
    drop(metrics.mount_timer());
    metrics.mount_timer().finish(Code::DeadlineExceeded);
    let text = metrics.encode();
    assert_eq!(
        sample(&text, "vault_csi_mounts_total{code=\"Canceled\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "vault_csi_mounts_total{code=\"DeadlineExceeded\"}"),
        Some(1.0)
    );
    assert_eq!(text.matches("vault_csi_mounts_total{").count(), 2);
}

#[test]
fn records_vault_requests_by_operation_and_status() {
    let metrics = Metrics::new();
    let ms = Duration::from_millis(1);
    metrics.vault_request(VaultOperation::Login, VaultStatus::Http(200), ms);
    metrics.vault_request(VaultOperation::Read, VaultStatus::Http(404), ms);
    metrics.vault_request(VaultOperation::Read, VaultStatus::Error, ms);
    metrics.vault_login();
    let text = metrics.encode();
    for (series, value) in [
        (
            "vault_csi_vault_requests_total{operation=\"login\",status=\"200\"}",
            1.0,
        ),
        (
            "vault_csi_vault_requests_total{operation=\"read\",status=\"404\"}",
            1.0,
        ),
        (
            "vault_csi_vault_requests_total{operation=\"read\",status=\"error\"}",
            1.0,
        ),
        (
            "vault_csi_vault_request_duration_seconds_count{operation=\"read\"}",
            2.0,
        ),
        ("vault_csi_vault_logins_total", 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
}

#[test]
fn records_cache_and_lease_events() {
    let metrics = Metrics::new();
    metrics.cache_hit(CacheKind::Token);
    metrics.cache_hit(CacheKind::Token);
    metrics.cache_miss(CacheKind::Response);
    metrics.cache_coalesced(CacheKind::Lease);
    metrics.set_leases_held(4);
    metrics.lease_added();
    metrics.lease_removed();
    metrics.lease_removed();
    metrics.lease_renewed();
    metrics.lease_reissued();
    metrics.stale_response();
    metrics.rotation_failure();
    let text = metrics.encode();
    for (series, value) in [
        ("vault_csi_cache_hits_total{cache=\"token\"}", 2.0),
        ("vault_csi_cache_hits_total{cache=\"response\"}", 0.0),
        ("vault_csi_cache_misses_total{cache=\"response\"}", 1.0),
        ("vault_csi_cache_coalesced_total{cache=\"lease\"}", 1.0),
        ("vault_csi_leases_held", 3.0),
        ("vault_csi_leases_renewed_total", 1.0),
        ("vault_csi_leases_reissued_total", 1.0),
        ("vault_csi_stale_responses_total", 1.0),
        ("vault_csi_rotation_failures_total", 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
}

#[test]
fn clones_share_one_registry() {
    let metrics = Metrics::new();
    let clone = metrics.clone();
    clone.vault_login();
    assert_eq!(
        sample(&metrics.encode(), "vault_csi_vault_logins_total"),
        Some(1.0)
    );
    assert_eq!(metrics, clone);
    assert_ne!(metrics, Metrics::new());
    assert_eq!(format!("{metrics:?}"), "Metrics { .. }");
}

#[test]
fn in_flight_gauges_follow_timers_and_guards() {
    let metrics = Metrics::new();
    let gauge = |name: &str| sample(&metrics.encode(), name);
    let timer = metrics.mount_timer();
    let dropped = metrics.mount_timer();
    let request = metrics.vault_request_in_flight();
    metrics.vault_request_waiting(1);
    assert_eq!(gauge("vault_csi_mounts_in_flight"), Some(2.0));
    assert_eq!(gauge("vault_csi_vault_requests_in_flight"), Some(1.0));
    assert_eq!(gauge("vault_csi_vault_requests_waiting"), Some(1.0));
    timer.finish(Code::Ok);
    drop(dropped);
    drop(request);
    metrics.vault_request_waiting(-1);
    assert_eq!(gauge("vault_csi_mounts_in_flight"), Some(0.0));
    assert_eq!(gauge("vault_csi_vault_requests_in_flight"), Some(0.0));
    assert_eq!(gauge("vault_csi_vault_requests_waiting"), Some(0.0));
}

#[tokio::test]
async fn runtime_tasks_count_the_tasks_alive_at_the_scrape() {
    let metrics = Metrics::new();
    let value = |text: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix("vault_csi_runtime_tasks "))
            .expect("the series")
            .parse()
            .unwrap()
    };
    let before = value(&metrics.encode());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = stopped.await;
    });
    assert_eq!(value(&metrics.encode()), before + 1);
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(value(&metrics.encode()), before);
}
