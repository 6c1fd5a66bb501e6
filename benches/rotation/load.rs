//! The simulated node: pods with their kubelet attributes and projected
//! tokens, and the driver's call patterns against the provider's socket —
//! all at once, rotation polls, and closed loops at a fixed concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tonic::transport::Channel;
use vault_csi::demo::sa_token::{PodTokenClaims, TokenSigner, tokens_attribute};
use vault_csi::proto::csi_driver_provider_client::CsiDriverProviderClient;
use vault_csi::proto::{MountRequest, VersionRequest};

use crate::audit::SHARED_SERVICE_ACCOUNT;
use crate::infra::{DB_PATH, KV_PATHS, NAMESPACE, PKI_PATH, ROLE, single_account};
use crate::timing;

/// The gRPC client the driver uses, over the unix socket.
pub type Client = CsiDriverProviderClient<Channel>;

/// Objects per SecretProviderClass: 3 KV v2 paths, 1 database credential,
/// 1 certificate.
pub const OBJECTS: usize = 5;
/// The audience the driver requests tokens for (`tokenRequests`).
const AUDIENCE: &str = "vault";
/// How long the pods' projected tokens live; longer than any run, as
/// kubelet refreshes them long before they expire.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Spreads pods' poll phases over the interval without clustering.
const GOLDEN: f64 = 0.618_033_988_749_895;

/// A pod and the Mount request the driver sends for its volume.
pub struct Pod {
    /// The request, built once: kubelet reuses a pod's token too.
    request: MountRequest,
}

/// The node: `deployment` replicas of one service account, then `singles`
/// pods with a service account each, all mounting the same SecretProviderClass.
pub fn node(
    deployment: usize,
    singles: usize,
    vault_addr: &str,
    signer: &TokenSigner,
    cert_ttl: Duration,
) -> Vec<Pod> {
    node_from(0, deployment, singles, vault_addr, signer, cert_ttl)
}

/// [`node`] with pod names and UIDs numbered from `first`, so a later
/// generation of the same workloads is new pods (the soak replaces them).
pub fn node_from(
    first: usize,
    deployment: usize,
    singles: usize,
    vault_addr: &str,
    signer: &TokenSigner,
    cert_ttl: Duration,
) -> Vec<Pod> {
    let objects = objects_yaml(cert_ttl);
    let accounts = (0..deployment)
        .map(|_| SHARED_SERVICE_ACCOUNT.to_owned())
        .chain((1..=singles).map(single_account));
    accounts
        .enumerate()
        .map(|(i, account)| (first + i, account))
        .map(|(i, account)| {
            let claims = PodTokenClaims {
                namespace: NAMESPACE.into(),
                service_account: account.clone(),
                pod_name: format!("{account}-{i:04}"),
                pod_uid: format!("00000000-0000-4000-8000-{i:012x}"),
                audience: vec![AUDIENCE.into()],
                ttl: TOKEN_LIFETIME,
            };
            let token = signer.sign(&claims);
            Pod {
                request: mount_request(&claims, &token, vault_addr, &objects),
            }
        })
        .collect()
}

/// The SecretProviderClass's `objects`: K = 5 object paths.
fn objects_yaml(cert_ttl: Duration) -> String {
    let mut yaml = String::new();
    for path in KV_PATHS {
        let name = path.rsplit('/').next().unwrap_or(path);
        yaml.push_str(&format!(
            "- objectName: {name}\n  secretPath: {path}\n  secretKey: value\n"
        ));
    }
    yaml.push_str(&format!(
        "- objectName: db-username\n  secretPath: {DB_PATH}\n  secretKey: username\n"
    ));
    yaml.push_str(&format!(
        "- objectName: tls.crt\n  secretPath: {PKI_PATH}\n  method: PUT\n  secretKey: certificate\n  \
         secretArgs:\n    common_name: app.bench.example.com\n    ttl: {}\n",
        timing::flag(cert_ttl)
    ));
    yaml
}

/// The driver's request: SPC parameters plus kubelet's pod attributes and
/// the pod's token for the audience.
fn mount_request(
    claims: &PodTokenClaims,
    token: &str,
    vault_addr: &str,
    objects: &str,
) -> MountRequest {
    let expiry = SystemTime::now() + claims.ttl;
    let mut attributes = Map::new();
    for (key, value) in [
        ("secretProviderClass", "bench-spc"),
        ("vaultAddress", vault_addr),
        ("roleName", ROLE),
        ("objects", objects),
        ("csi.storage.k8s.io/pod.name", &claims.pod_name),
        ("csi.storage.k8s.io/pod.namespace", &claims.namespace),
        ("csi.storage.k8s.io/pod.uid", &claims.pod_uid),
        (
            "csi.storage.k8s.io/serviceAccount.name",
            &claims.service_account,
        ),
        ("csi.storage.k8s.io/ephemeral", "true"),
        (
            "csi.storage.k8s.io/serviceAccount.tokens",
            &tokens_attribute(&[(AUDIENCE, token, expiry)]),
        ),
    ] {
        attributes.insert(key.into(), json!(value));
    }
    MountRequest {
        attributes: Value::Object(attributes).to_string(),
        secrets: "null".into(),
        target_path: format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/secrets/mount",
            claims.pod_uid
        ),
        // 0644 in decimal, the driver's default.
        permission: "420".into(),
        current_object_version: vec![],
    }
}

/// One Mount; its latency, or why it failed (an error status, or not the
/// five non-empty files expected).
pub async fn mount(client: &mut Client, pod: &Pod) -> Result<Duration, String> {
    let started = Instant::now();
    let response = client
        .mount(pod.request.clone())
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let elapsed = started.elapsed();
    if response.files.len() != OBJECTS || response.files.iter().any(|f| f.contents.is_empty()) {
        return Err(format!(
            "expected {OBJECTS} non-empty files, got {:?}",
            response
                .files
                .iter()
                .map(|f| (&f.path, f.contents.len()))
                .collect::<Vec<_>>()
        ));
    }
    Ok(elapsed)
}

/// One `Version` call (no work in the provider): the gRPC round trip.
pub async fn version(client: &mut Client) -> Result<Duration, String> {
    let started = Instant::now();
    client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .map_err(|s| format!("Version: {:?}: {}", s.code(), s.message()))?;
    Ok(started.elapsed())
}

/// Latencies and failures of a series of mounts.
#[derive(Debug, Default)]
pub struct Samples {
    /// Latency of each successful mount.
    pub latencies: Vec<Duration>,
    /// Failed mounts.
    pub errors: u64,
    /// The first failure, to show.
    pub first_error: Option<String>,
    /// Wall-clock time of the whole series.
    pub wall: Duration,
}

impl Samples {
    /// Records one mount's outcome.
    fn record(&mut self, outcome: Result<Duration, String>) {
        match outcome {
            Ok(latency) => self.latencies.push(latency),
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// Adds another worker's samples.
    fn absorb(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// The `q`-quantile (0..=1) of the latencies, nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies, q)
    }

    /// Successful mounts per second of wall time.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64().max(f64::EPSILON)
    }
}

/// The `q`-quantile (0..=1) of `values`, nearest rank; zero when empty.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Every pod mounts at the same moment, as when a node (or the provider)
/// starts with all its pods scheduled.
pub async fn all_at_once(client: &Client, pods: &Arc<Vec<Pod>>) -> Samples {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..pods.len() {
        let (mut client, pods) = (client.clone(), pods.clone());
        tasks.spawn(async move { mount(&mut client, &pods[i]).await });
    }
    let mut samples = Samples::default();
    while let Some(outcome) = tasks.join_next().await {
        samples.record(outcome.unwrap_or_else(|e| Err(format!("task: {e}"))));
    }
    samples.wall = started.elapsed();
    samples
}

/// `cycles` rotation polls: each pod remounts once per `poll`, at its own
/// phase within the interval, as kubelet's per-pod republish loop does (the
/// phases are spread evenly, so the node's load is steady, not a burst).
pub async fn rotation(
    client: &Client,
    pods: &Arc<Vec<Pod>>,
    cycles: u32,
    poll: Duration,
) -> Samples {
    let base = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..pods.len() {
        let (mut client, pods) = (client.clone(), pods.clone());
        let phase = poll.mul_f64((i as f64 * GOLDEN).fract());
        tasks.spawn(async move {
            let mut samples = Samples::default();
            for cycle in 0..cycles {
                tokio::time::sleep_until(base + poll * cycle + phase).await;
                samples.record(mount(&mut client, &pods[i]).await);
            }
            samples
        });
    }
    let mut samples = Samples::default();
    while let Some(worker) = tasks.join_next().await {
        match worker {
            Ok(worker) => samples.absorb(worker),
            Err(e) => samples.record(Err(format!("task: {e}"))),
        }
    }
    samples.wall = base.elapsed();
    samples
}

/// `concurrency` callers each mounting the node's pods in turn, back to
/// back, for `duration`; the first `warmup` is not recorded (connections,
/// allocator, caches settle).
pub async fn closed_loop(
    client: &Client,
    pods: &Arc<Vec<Pod>>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Samples {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let (record_from, until) = (start + warmup, start + warmup + duration);
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (mut client, pods, next) = (client.clone(), pods.clone(), next.clone());
        tasks.spawn(async move {
            let mut samples = Samples::default();
            loop {
                let began = Instant::now();
                if began >= until {
                    return samples;
                }
                let pod = &pods[next.fetch_add(1, Ordering::Relaxed) % pods.len()];
                let outcome = mount(&mut client, pod).await;
                if began >= record_from {
                    samples.record(outcome);
                }
            }
        });
    }
    let mut samples = Samples::default();
    while let Some(worker) = tasks.join_next().await {
        match worker {
            Ok(worker) => samples.absorb(worker),
            Err(e) => samples.record(Err(format!("task: {e}"))),
        }
    }
    // Mounts that began before `until` may finish after it; they count.
    samples.wall = start.elapsed().saturating_sub(warmup);
    samples
}
