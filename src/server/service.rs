//! The gRPC service `v1alpha1.CSIDriverProvider`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Code, Request, Response, Status};

use super::remounts::Remounts;
use crate::metrics::Metrics;
use crate::mount::{MountError, Mounter};
use crate::proto::csi_driver_provider_server::CsiDriverProvider;
use crate::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};

/// Longest a Mount may run without a deadline from the caller: kubelet's
/// own CSI timeout (older drivers' rotation calls carry no deadline).
pub const MAX_MOUNT_DURATION: Duration = Duration::from_secs(120);

/// Answers the driver's calls.
pub struct ProviderService {
    /// Does the work of each Mount.
    mounter: Arc<Mounter>,
    /// Counts and times every Mount by its gRPC code.
    metrics: Metrics,
    /// Volumes that mounted before, to recognise failed rotations.
    remounts: Remounts,
}

impl ProviderService {
    /// A service backed by `mounter`, recording into `metrics`.
    pub fn new(mounter: Arc<Mounter>, metrics: Metrics) -> Self {
        Self {
            mounter,
            metrics,
            remounts: Remounts::default(),
        }
    }

    /// One Mount, from parsing to the answer; `started` is when the call
    /// arrived, for the log's duration.
    async fn mount_once(
        &self,
        request: Request<MountRequest>,
        started: Instant,
    ) -> Result<Response<MountResponse>, Status> {
        let budget = grpc_timeout(request.metadata())
            .map_or(MAX_MOUNT_DURATION, |t| t.min(MAX_MOUNT_DURATION));
        let request = request.into_inner();
        let cfg = match self.mounter.parse(&request) {
            Ok(cfg) => cfg,
            Err(error) => {
                tracing::warn!(code = ?error.code, error = %error.message, "mount rejected");
                return Err(error.into());
            }
        };
        let result = match tokio::time::timeout(budget, self.mounter.mount(&cfg)).await {
            Ok(result) => result,
            Err(_) => Err(MountError::new(
                Code::DeadlineExceeded,
                format!(
                    "SecretProviderClass {}: the mount did not finish within its {:.1}s deadline while \
                     talking to Vault at {}; {}",
                    cfg.spc,
                    budget.as_secs_f64(),
                    cfg.connection.address,
                    saturation_hint(self.mounter.vault_load(&cfg)),
                ),
            )),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(_) => tracing::info!(
                pod = %cfg.pod.name, namespace = %cfg.pod.namespace, spc = %cfg.spc,
                objects = cfg.objects.len(), duration_ms = elapsed_ms, outcome = "OK", "mount"
            ),
            Err(e) if self.remounts.is_rotation(&cfg.pod.uid, &cfg.spc) => {
                self.metrics.rotation_failure();
                tracing::warn!(
                    pod = %cfg.pod.name, namespace = %cfg.pod.namespace, spc = %cfg.spc,
                    objects = cfg.objects.len(), duration_ms = elapsed_ms, outcome = ?e.code,
                    error = %e.message,
                    "rotation failed: the pod keeps its previous files, and the driver reports no error"
                );
            }
            Err(e) => tracing::warn!(
                pod = %cfg.pod.name, namespace = %cfg.pod.namespace, spc = %cfg.spc,
                objects = cfg.objects.len(), duration_ms = elapsed_ms, outcome = ?e.code,
                error = %e.message, "mount"
            ),
        }
        if result.is_ok() {
            self.remounts.succeeded(&cfg.pod.uid, &cfg.spc);
        }
        result.map(Response::new).map_err(Status::from)
    }
}

#[tonic::async_trait]
impl CsiDriverProvider for ProviderService {
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: "v1alpha1".into(),
            runtime_name: crate::RUNTIME_NAME.into(),
            runtime_version: crate::VERSION.into(),
        }))
    }

    async fn mount(
        &self,
        request: Request<MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        // The timer wraps everything, parse failures and deadlines included;
        // if tonic drops this future (the driver hung up) it counts Canceled.
        let timer = self.metrics.mount_timer();
        let result = self.mount_once(request, timer.started()).await;
        timer.finish(match &result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        });
        result
    }
}

/// The end of a deadline message: whether requests were queued behind
/// `--vault-max-concurrent-requests`, which means Vault (or the limit) is
/// the bottleneck rather than one slow answer.
fn saturation_hint(load: Option<crate::vault::VaultLoad>) -> String {
    match load {
        // This mount's own wait has ended with its deadline, so all slots
        // busy is the sign, with or without others still waiting.
        Some(load) if load.in_flight >= load.limit || load.waiting > 0 => format!(
            "all {} request slots this provider allows for that Vault \
             (--vault-max-concurrent-requests) were busy, with {} more requests waiting: Vault is \
             slow or overloaded, or the limit is too low for this node",
            load.limit, load.waiting
        ),
        _ => "check Vault's health and latency".to_string(),
    }
}

/// The caller's deadline from the `grpc-timeout` header (gRPC over HTTP/2
/// spec: up to 8 digits and a unit), less a small margin so the provider's
/// own, clearer error wins the race with the caller's.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    // The call's deadline started on the caller's clock before the request
    // crossed the socket and waited for a worker, and the answer must cross
    // back: a busy node needs a few hundred milliseconds of that margin.
    let margin = (timeout / 50)
        .max(Duration::from_millis(250))
        .min(timeout / 10);
    Some(timeout.saturating_sub(margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(grpc_timeout(&m), None);
        m.insert("grpc-timeout", "5S".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_millis(4750)));
        m.insert("grpc-timeout", "1000m".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_millis(900)));
        m.insert("grpc-timeout", "120S".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_millis(117_600)));
        for bad in ["", "S", "123456789S", "5X", "xS"] {
            m.insert("grpc-timeout", bad.parse().unwrap());
            assert_eq!(grpc_timeout(&m), None, "{bad}");
        }
    }

    #[test]
    fn deadline_messages_say_when_vault_requests_were_queued() {
        use crate::vault::VaultLoad;
        let load = |in_flight, waiting| {
            Some(VaultLoad {
                limit: 4,
                in_flight,
                waiting,
            })
        };
        for busy in [load(4, 0), load(4, 7), load(3, 1)] {
            let hint = saturation_hint(busy);
            assert!(hint.contains("--vault-max-concurrent-requests"), "{hint}");
            assert!(hint.contains("all 4 request slots"), "{hint}");
        }
        assert!(saturation_hint(load(4, 7)).contains("7 more requests waiting"));
        for idle in [None, load(1, 0)] {
            assert_eq!(saturation_hint(idle), "check Vault's health and latency");
        }
    }
}
