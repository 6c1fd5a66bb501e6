//! Which pods' volumes have mounted before, so a failed remount is known as
//! a failed rotation.  Driver v1.6 hides failed remounts from users (the pod
//! keeps its old files and no event is raised), so the provider counts them
//! and logs them in words that say what happened.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// Most (pod, SecretProviderClass) pairs remembered.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

/// Remembers volumes that mounted successfully.
pub struct Remounts {
    /// `(pod uid, spc)` pairs that have mounted.
    mounted: Mutex<LruCache<(String, String), ()>>,
}

impl Default for Remounts {
    fn default() -> Self {
        Self {
            mounted: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

impl Remounts {
    /// Records a successful mount.
    pub fn succeeded(&self, pod_uid: &str, spc: &str) {
        if pod_uid.is_empty() {
            return;
        }
        self.mounted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put((pod_uid.to_string(), spc.to_string()), ());
    }

    /// Whether a failure of this volume is a failed rotation (it mounted before).
    pub fn is_rotation(&self, pod_uid: &str, spc: &str) -> bool {
        !pod_uid.is_empty()
            && self
                .mounted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&(pod_uid.to_string(), spc.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::Remounts;

    #[test]
    fn a_failure_after_a_success_is_a_rotation() {
        let remounts = Remounts::default();
        assert!(!remounts.is_rotation("uid", "ns/spc"));
        remounts.succeeded("uid", "ns/spc");
        assert!(remounts.is_rotation("uid", "ns/spc"));
        assert!(!remounts.is_rotation("uid", "ns/other"));
        assert!(!remounts.is_rotation("", "ns/spc"));
    }
}
