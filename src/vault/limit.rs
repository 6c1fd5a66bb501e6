//! The per-Vault concurrency limit (`--vault-max-concurrent-requests`).
//!
//! When many pods on a node start at once (a node reboot, a rollout), every
//! Mount wants Vault at the same moment.  Each HTTP exchange with one Vault
//! address first takes one of that address's slots, so a node never has more
//! than the limit in flight to it; the rest wait in FIFO order.  A slot is
//! held only for one exchange, never across a retry's backoff or while a
//! caller waits for another caller's login or read, so waiting cannot
//! deadlock.  The wait counts against the Mount's deadline, and on its own is
//! bounded by the request timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{TransportKind, VaultError};
use crate::metrics::Metrics;
use crate::spc::VaultAddress;

/// Most addresses whose slots are tracked; past it the table starts over
/// (SecretProviderClass authors choose addresses, so it must be bounded).
/// Exchanges holding an old address's slots finish normally.
const MAX_ADDRESSES: usize = 256;

/// The slots of every Vault address.
#[derive(Debug)]
pub(super) struct Limiter {
    /// Slots per address; 0 turns the limit off.
    limit: usize,
    /// Each address's slots.
    addresses: Mutex<HashMap<VaultAddress, Arc<Slots>>>,
}

/// How busy one address's slots are, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultLoad {
    /// The limit (`--vault-max-concurrent-requests`).
    pub limit: usize,
    /// Exchanges in flight now.
    pub in_flight: usize,
    /// Exchanges waiting for a slot now.
    pub waiting: usize,
}

/// One address's slots.
#[derive(Debug)]
pub(super) struct Slots {
    /// One permit per slot.
    semaphore: Arc<Semaphore>,
    /// The number of slots.
    limit: usize,
    /// Exchanges waiting for a slot.
    waiting: AtomicUsize,
}

/// A taken slot, given back on drop (also when the caller is cancelled).
#[derive(Debug)]
pub(super) struct Slot {
    /// The semaphore permit.
    _permit: OwnedSemaphorePermit,
}

impl Limiter {
    /// A limiter allowing `limit` exchanges per address (0: unlimited).
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            addresses: Mutex::new(HashMap::new()),
        }
    }

    /// The slots of `address`; `None` when there is no limit.
    pub(super) fn slots(&self, address: &VaultAddress) -> Option<Arc<Slots>> {
        if self.limit == 0 {
            return None;
        }
        let mut addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if addresses.len() >= MAX_ADDRESSES && !addresses.contains_key(address) {
            addresses.clear();
        }
        let slots = addresses.entry(address.clone()).or_insert_with(|| {
            Arc::new(Slots {
                semaphore: Arc::new(Semaphore::new(self.limit)),
                limit: self.limit,
                waiting: AtomicUsize::new(0),
            })
        });
        Some(slots.clone())
    }

    /// How busy `address` is now; `None` without a limit or before its
    /// first request.
    pub(super) fn load(&self, address: &VaultAddress) -> Option<VaultLoad> {
        let addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        let slots = addresses.get(address)?;
        Some(VaultLoad {
            limit: slots.limit,
            in_flight: slots.limit - slots.semaphore.available_permits(),
            waiting: slots.waiting.load(Ordering::Relaxed),
        })
    }
}

impl Slots {
    /// Waits for a free slot, at most `timeout`.
    pub(super) async fn take(
        self: &Arc<Self>,
        timeout: Duration,
        metrics: &Metrics,
    ) -> Result<Slot, VaultError> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(Slot { _permit: permit });
        }
        let _waiting = Waiting::new(self, metrics);
        match tokio::time::timeout(timeout, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot { _permit: permit }),
            // The semaphore is never closed; treated like a timeout anyway.
            Ok(Err(_)) | Err(_) => Err(VaultError::Transport {
                kind: TransportKind::Saturated,
                detail: format!(
                    "all {limit} request slots this provider allows for this Vault \
                     (--vault-max-concurrent-requests={limit}) stayed busy for {secs}s, so the \
                     request was not sent; Vault is slow or overloaded",
                    limit = self.limit,
                    secs = timeout.as_secs(),
                ),
            }),
        }
    }
}

/// Counts one caller waiting for a slot while it lives.
struct Waiting<'a> {
    /// The address's slots.
    slots: &'a Slots,
    /// Where the node-wide waiting gauge lives.
    metrics: &'a Metrics,
}

impl<'a> Waiting<'a> {
    /// Starts counting.
    fn new(slots: &'a Slots, metrics: &'a Metrics) -> Self {
        slots.waiting.fetch_add(1, Ordering::Relaxed);
        metrics.vault_request_waiting(1);
        Self { slots, metrics }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.slots.waiting.fetch_sub(1, Ordering::Relaxed);
        self.metrics.vault_request_waiting(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> VaultAddress {
        VaultAddress::parse("https://vault:8200").unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_shared_per_address_and_freed_on_drop() {
        let metrics = Metrics::new();
        let limiter = Limiter::new(2);
        let slots = limiter.slots(&address()).unwrap();
        assert!(Arc::ptr_eq(&slots, &limiter.slots(&address()).unwrap()));
        let other = limiter
            .slots(&VaultAddress::parse("https://other:8200").unwrap())
            .unwrap();
        assert!(!Arc::ptr_eq(&slots, &other));

        let a = slots.take(Duration::from_secs(1), &metrics).await.unwrap();
        let _b = slots.take(Duration::from_secs(1), &metrics).await.unwrap();
        assert_eq!(
            limiter.load(&address()),
            Some(VaultLoad {
                limit: 2,
                in_flight: 2,
                waiting: 0
            })
        );
        // A third waits; it gets the slot the first gives back.
        let waiter = {
            let slots = slots.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move { slots.take(Duration::from_secs(5), &metrics).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(limiter.load(&address()).unwrap().waiting, 1);
        drop(a);
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(limiter.load(&address()).unwrap().waiting, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_timeout_fails_clearly_without_sending() {
        let metrics = Metrics::new();
        let limiter = Limiter::new(1);
        let slots = limiter.slots(&address()).unwrap();
        let _held = slots.take(Duration::from_secs(1), &metrics).await.unwrap();
        let err = slots
            .take(Duration::from_secs(3), &metrics)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            VaultError::Transport {
                kind: TransportKind::Saturated,
                ..
            }
        ));
        let text = err.to_string();
        assert!(text.contains("--vault-max-concurrent-requests=1"), "{text}");
        assert!(text.contains("overloaded"), "{text}");
        assert_eq!(limiter.load(&address()).unwrap().waiting, 0);
        assert!(
            metrics
                .encode()
                .contains("vault_csi_vault_requests_waiting 0")
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = Limiter::new(0);
        assert!(limiter.slots(&address()).is_none());
        assert!(limiter.load(&address()).is_none());
    }
}
