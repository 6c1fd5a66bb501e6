//! The names a SecretProviderClass's `parameters` may use, for tools that
//! look at an SPC without mounting it (`vault-csi check` suggests the
//! closest name for a misspelt one).  [`super::parse`] reads exactly these;
//! a unit test below keeps the two in step.

/// Every parameter [`super::parse`] reads, in the README's order.
pub const PARAMETERS: &[&str] = &[
    "roleName",
    "vaultAddress",
    "vaultNamespace",
    "vaultAuthMountPath",
    "vaultKubernetesMountPath",
    "vaultAuthMethod",
    "audience",
    "vaultCACertPath",
    "vaultCADirectory",
    "vaultTLSServerName",
    "vaultTLSClientCertPath",
    "vaultTLSClientKeyPath",
    "vaultSkipTLSVerify",
    "objects",
    "cacheTTL",
    "dynamicSecretReuse",
    "staleIfError",
];

/// Parameters HashiCorp's provider once read and now ignores (its
/// CHANGELOG 0.1.0 / 1.0.0); still found in old manifests.
pub const LEGACY_PARAMETERS: &[&str] = &[
    "kubernetesServiceAccountPath",
    "vaultCAPem",
    "objectVersion",
    "objectPath",
];

/// Attributes the driver and kubelet set on every mount request, over the
/// SPC's own values: an SPC that sets them has no effect.
pub const DRIVER_ATTRIBUTES: &[&str] = &["secretProviderClass"];

/// Prefix of the attributes kubelet sets (`csi.storage.k8s.io/pod.name`, …).
pub const KUBELET_ATTRIBUTE_PREFIX: &str = "csi.storage.k8s.io/";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{DRIVER_ATTRIBUTES, KUBELET_ATTRIBUTE_PREFIX, PARAMETERS};

    /// The quoted names passed to `get(` or `pick(` in the parser's source.
    fn names_read_by_the_parser() -> BTreeSet<String> {
        let source = include_str!("mod.rs");
        let mut names = BTreeSet::new();
        for call in ["get(\"", "pick(\""] {
            for (at, _) in source.match_indices(call) {
                let rest = &source[at + call.len()..];
                if let Some(end) = rest.find('"') {
                    names.insert(rest[..end].to_string());
                }
            }
        }
        names
            .into_iter()
            .filter(|n| {
                !n.starts_with(KUBELET_ATTRIBUTE_PREFIX) && !DRIVER_ATTRIBUTES.contains(&n.as_str())
            })
            .collect()
    }

    #[test]
    fn the_list_is_exactly_what_the_parser_reads() {
        let listed: BTreeSet<String> = PARAMETERS.iter().map(|s| s.to_string()).collect();
        assert_eq!(listed.len(), PARAMETERS.len(), "a name is listed twice");
        assert_eq!(listed, names_read_by_the_parser());
    }
}
