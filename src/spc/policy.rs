//! Guardrails a platform team sets on what a SecretProviderClass may choose:
//! which Vault it may send pods' tokens to (`--allowed-vault-addresses`) and
//! whether it may change TLS settings (`--allow-spc-tls-overrides`).
//!
//! Both are parsed once from the flags into an [`SpcPolicy`] and applied by
//! [`super::parse`], so a refused SecretProviderClass never causes a network
//! call.  The defaults allow everything, as HashiCorp's provider does.
//!
//! Matching rules for `--allowed-vault-addresses` entries:
//! - a full TCP address (`https://vault.example.com:8200`) matches an address
//!   with the same scheme, host and port (a missing port is the scheme's
//!   default); a path prefix in the SecretProviderClass's address is allowed,
//!   as it reaches the same server;
//! - a unix socket (`unix:///run/vault/agent.sock`) matches exactly that path;
//! - a host (`vault.example.com`, `10.0.0.5`) matches `http` and `https`
//!   addresses with that host on any port;
//! - `*.vault.svc` matches a host with exactly one more label in front
//!   (`vault.vault.svc`, not `a.b.vault.svc` nor `vault.svc`), as a wildcard
//!   in a TLS certificate does.  Host patterns never match a unix socket.
//!
//! Hosts are compared after URL normalisation (lower case, IDNA, IPv4
//! forms such as `127.1`), so spelling cannot sneak past an entry.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use super::{SpcError, TlsConfig, VaultAddress};

/// What SecretProviderClasses may choose.  The default allows everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpcPolicy {
    /// The addresses `vaultAddress` may name; `None` allows any.
    pub allowed_addresses: Option<AddressAllowList>,
    /// Whether the SPC's TLS parameters may differ from the provider's own.
    pub allow_tls_overrides: bool,
}

impl Default for SpcPolicy {
    fn default() -> Self {
        Self {
            allowed_addresses: None,
            allow_tls_overrides: true,
        }
    }
}

/// The parsed `--allowed-vault-addresses` list, plus the provider's default
/// address, which is always allowed: the platform team chose it, and an SPC
/// that names it explicitly goes nowhere an SPC without `vaultAddress`
/// would not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressAllowList {
    /// The entries, the default address first.
    entries: Vec<Entry>,
    /// The list for messages: the default address, then the flag's entries
    /// as written.
    shown: Vec<String>,
}

/// One allowed address or host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A TCP server: scheme, normalised host and effective port must match.
    Origin(Origin),
    /// A unix socket path, matched exactly.
    Unix(PathBuf),
    /// A host on any port, over http or https.
    Host(String),
    /// `*.<suffix>`: a host with exactly one label in front of the suffix
    /// (stored with its leading dot).
    Wildcard(String),
}

/// The parts of a TCP address that decide which server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    /// `http` or `https`.
    scheme: String,
    /// The normalised host (`[::1]` for IPv6).
    host: String,
    /// The port, or the scheme's default.
    port: u16,
}

impl Origin {
    /// The origin of a parsed address; `None` for a unix socket.
    fn of(address: &VaultAddress) -> Option<Origin> {
        let VaultAddress::Tcp { base } = address else {
            return None;
        };
        let url = reqwest::Url::parse(base).ok()?;
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_string(),
            port: url.port_or_known_default()?,
        })
    }
}

impl AddressAllowList {
    /// Parses the flag's comma-separated list.  Returns `Ok(None)` when it
    /// names nothing (unset or empty: any address is allowed).
    pub fn parse(list: &str, default_address: &VaultAddress) -> Result<Option<Self>, String> {
        let mut entries: Vec<Entry> = Entry::of_address(default_address).into_iter().collect();
        let mut shown = vec![default_address.to_string()];
        for text in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            entries.push(Entry::parse(text)?);
            shown.push(text.to_string());
        }
        Ok((shown.len() > 1).then_some(Self { entries, shown }))
    }

    /// Whether `address` matches an entry.
    pub fn allows(&self, address: &VaultAddress) -> bool {
        let origin = Origin::of(address);
        self.entries.iter().any(|entry| match (entry, address) {
            (Entry::Unix(path), VaultAddress::Unix { socket }) => path == socket,
            (Entry::Origin(allowed), VaultAddress::Tcp { .. }) => origin.as_ref() == Some(allowed),
            (Entry::Host(host), VaultAddress::Tcp { .. }) => {
                origin.as_ref().is_some_and(|o| &o.host == host)
            }
            (Entry::Wildcard(suffix), VaultAddress::Tcp { .. }) => {
                origin.as_ref().is_some_and(|o| {
                    !is_ip(&o.host)
                        && o.host
                            .strip_suffix(suffix.as_str())
                            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
                })
            }
            _ => false,
        })
    }
}

impl fmt::Display for AddressAllowList {
    /// The default address, then the flag's entries as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown.join(", "))
    }
}

impl Entry {
    /// The entry that allows exactly `address`'s server (`None` only for
    /// a TCP address without host or port, which parsing never yields).
    fn of_address(address: &VaultAddress) -> Option<Entry> {
        match address {
            VaultAddress::Unix { socket } => Some(Entry::Unix(socket.clone())),
            VaultAddress::Tcp { .. } => Origin::of(address).map(Entry::Origin),
        }
    }

    /// Parses one entry of `--allowed-vault-addresses`.
    fn parse(text: &str) -> Result<Entry, String> {
        let bad = |why: &str| format!("--allowed-vault-addresses entry {text:?}: {why}");
        if text.contains("://") {
            let address = VaultAddress::parse(text).map_err(|e| bad(&e.message))?;
            if let VaultAddress::Tcp { base } = &address {
                let url = reqwest::Url::parse(base).map_err(|e| bad(&e.to_string()))?;
                if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                    return Err(bad(
                        "write a full address as scheme://host[:port], without a path",
                    ));
                }
            }
            return Entry::of_address(&address).ok_or_else(|| bad("no host or port"));
        }
        let (wildcard, host) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if host.contains('*') {
            return Err(bad(
                "a wildcard may only be the whole first label, as in *.vault.svc; to allow \
                 any address, leave the flag unset",
            ));
        }
        let url = reqwest::Url::parse(&format!("http://{host}/"))
            .ok()
            .filter(|u| u.port().is_none() && u.path() == "/" && u.username().is_empty())
            .ok_or_else(|| {
                bad(
                    "not a host name; write a host (vault.example.com), a pattern \
                     (*.vault.svc) or a full address (https://vault.example.com:8200)",
                )
            })?;
        let host = url.host_str().ok_or_else(|| bad("no host"))?.to_string();
        if !wildcard {
            return Ok(Entry::Host(host));
        }
        if is_ip(&host) {
            return Err(bad(
                "a wildcard pattern needs a DNS name, not an IP address",
            ));
        }
        Ok(Entry::Wildcard(format!(".{host}")))
    }
}

/// Whether a normalised URL host is an IP address.
fn is_ip(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

/// Reads one optional TLS setting.
type TlsField = fn(&TlsConfig) -> &Option<String>;

/// The SPC parameters that change TLS settings, each with what it sets.
const TLS_PARAMETERS: [(&str, TlsField); 5] = [
    ("vaultCACertPath", |t| &t.ca_cert),
    ("vaultCADirectory", |t| &t.ca_directory),
    ("vaultTLSServerName", |t| &t.server_name),
    ("vaultTLSClientCertPath", |t| &t.client_cert),
    ("vaultTLSClientKeyPath", |t| &t.client_key),
];

impl SpcPolicy {
    /// Refuses `address` unless the allow list (if any) names it.
    pub(super) fn check_address(&self, spc: &str, address: &VaultAddress) -> Result<(), SpcError> {
        let Some(allowed) = &self.allowed_addresses else {
            return Ok(());
        };
        if allowed.allows(address) {
            return Ok(());
        }
        Err(SpcError::new(format!(
            "SecretProviderClass {spc}: vaultAddress {address} is not allowed by this provider \
             (--allowed-vault-addresses; allowed: {allowed}). Use one of the allowed addresses, or \
             remove vaultAddress to use the default {default}; if this Vault is legitimate, ask the \
             platform team to add it to --allowed-vault-addresses",
            default = allowed.shown[0],
        )))
    }

    /// Refuses TLS parameters that would change the provider's own settings
    /// (`defaults`) when overrides are off.  A parameter equal to the
    /// provider's setting changes nothing and is accepted, so SPCs written
    /// for HashiCorp's provider that repeat the CA path keep working; so is
    /// `vaultSkipTLSVerify: "false"`, which can only make TLS stricter.
    pub(super) fn check_tls(
        &self,
        spc: &str,
        chosen: &TlsConfig,
        defaults: &TlsConfig,
    ) -> Result<(), SpcError> {
        if self.allow_tls_overrides {
            return Ok(());
        }
        let mut changed: Vec<&str> = TLS_PARAMETERS
            .iter()
            .filter(|(_, field)| field(chosen) != field(defaults))
            .map(|(name, _)| *name)
            .collect();
        if chosen.skip_verify && !defaults.skip_verify {
            changed.push("vaultSkipTLSVerify");
        }
        if changed.is_empty() {
            return Ok(());
        }
        Err(SpcError::new(format!(
            "SecretProviderClass {spc}: {} would change the provider's TLS settings, which this \
             provider does not allow (--allow-spc-tls-overrides=false). Remove {} from the \
             SecretProviderClass: the provider's own TLS settings (--vault-tls-* flags) apply",
            changed.join(", "),
            if changed.len() == 1 { "it" } else { "them" },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> VaultAddress {
        VaultAddress::parse(text).unwrap()
    }

    fn list(entries: &str) -> AddressAllowList {
        AddressAllowList::parse(entries, &addr("https://default.example:8200"))
            .unwrap()
            .expect("a list")
    }

    #[test]
    fn an_empty_flag_allows_everything() {
        let default = addr("https://vault:8200");
        assert_eq!(AddressAllowList::parse("", &default).unwrap(), None);
        assert_eq!(AddressAllowList::parse(" , ,", &default).unwrap(), None);
        assert!(
            SpcPolicy::default()
                .check_address("ns/spc", &addr("http://anything:1"))
                .is_ok()
        );
    }

    #[test]
    fn full_addresses_match_scheme_host_and_port() {
        let l = list("https://vault.example.com:8200, https://other.example.com");
        for ok in [
            "https://vault.example.com:8200",
            "https://VAULT.example.com:8200/",
            "https://vault.example.com:8200/prefix",
            "https://other.example.com:443",
            "https://other.example.com",
        ] {
            assert!(l.allows(&addr(ok)), "{ok}");
        }
        for denied in [
            "http://vault.example.com:8200",
            "https://vault.example.com:8201",
            "https://vault.example.com",
            "https://vault.example.com.evil.test:8200",
            "https://evil.test:8200#vault.example.com:8200",
            "http://other.example.com:443",
            "unix:///vault.example.com",
        ] {
            assert!(!l.allows(&addr(denied)), "{denied}");
        }
    }

    #[test]
    fn the_default_address_is_always_allowed() {
        let l = list("vault.example.com");
        assert!(l.allows(&addr("https://default.example:8200")));
        assert!(!l.allows(&addr("https://default.example:8201")));
        assert!(!l.allows(&addr("http://default.example:8200")));
        assert_eq!(
            l.to_string(),
            "https://default.example:8200, vault.example.com"
        );
    }

    #[test]
    fn hosts_match_any_port_and_both_schemes_after_normalisation() {
        let l = list("vault.example.com,127.0.0.1,[::1],Bücher.example");
        for ok in [
            "https://vault.example.com",
            "http://vault.example.com:8200",
            "https://Vault.Example.COM:1234",
            "http://127.0.0.1:8200",
            "http://127.1:8200",
            "http://[0:0::1]:8200",
            "https://xn--bcher-kva.example",
        ] {
            assert!(l.allows(&addr(ok)), "{ok}");
        }
        for denied in [
            "https://a.vault.example.com",
            "https://vault.example.com.evil.test",
            "https://evilvault.example.com",
            "http://127.0.0.2:8200",
            "unix:///run/vault.example.com",
        ] {
            assert!(!l.allows(&addr(denied)), "{denied}");
        }
    }

    #[test]
    fn a_wildcard_matches_exactly_one_leading_label() {
        let l = list("*.vault.svc");
        assert!(l.allows(&addr("http://vault.vault.svc:8200")));
        assert!(l.allows(&addr("https://x-1.vault.svc")));
        for denied in [
            "https://vault.svc",
            "https://a.b.vault.svc",
            "https://avault.svc",
            "https://a.vault.svc.evil.test",
        ] {
            assert!(!l.allows(&addr(denied)), "{denied}");
        }
    }

    #[test]
    fn unix_sockets_match_their_exact_path() {
        let l = list("unix:///run/vault/agent.sock");
        assert!(l.allows(&addr("unix:///run/vault/agent.sock")));
        assert!(!l.allows(&addr("unix:///run/vault/other.sock")));
        assert!(!l.allows(&addr("unix:///run/vault/../evil/agent.sock")));
        assert!(!l.allows(&addr("http://localhost:8200")));
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_named() {
        for (entry, fragment) in [
            ("vault:8200", "not a host name"),
            ("https://vault:8200/v1", "without a path"),
            ("ftp://vault", "must start with"),
            ("*", "wildcard may only"),
            ("**.svc", "wildcard may only"),
            ("a.*.svc", "wildcard may only"),
            ("*.10.0.0.1", "needs a DNS name"),
            ("user@vault", "not a host name"),
            ("vault/path", "not a host name"),
        ] {
            let err = AddressAllowList::parse(entry, &addr("https://v:8200")).unwrap_err();
            assert!(err.contains(&format!("{entry:?}")), "{err}");
            assert!(err.contains(fragment), "{entry}: {err}");
        }
    }

    #[test]
    fn refusals_name_the_spc_the_address_the_list_and_the_fix() {
        let policy = SpcPolicy {
            allowed_addresses: Some(list("*.vault.svc")),
            allow_tls_overrides: true,
        };
        let err = policy
            .check_address("team/db", &addr("https://evil.test:8200"))
            .unwrap_err();
        for fragment in [
            "SecretProviderClass team/db",
            "https://evil.test:8200",
            "https://default.example:8200, *.vault.svc",
            "remove vaultAddress",
            "--allowed-vault-addresses",
        ] {
            assert!(err.message.contains(fragment), "{fragment}: {err}");
        }
        assert!(!err.missing_credential);
    }

    #[test]
    fn tls_overrides_are_refused_only_when_they_change_something() {
        let strict = SpcPolicy {
            allowed_addresses: None,
            allow_tls_overrides: false,
        };
        let defaults = TlsConfig {
            ca_cert: Some("/etc/vault/ca.pem".into()),
            ..Default::default()
        };
        assert!(strict.check_tls("ns/s", &defaults, &defaults).is_ok());
        let skip = TlsConfig {
            skip_verify: true,
            ..defaults.clone()
        };
        let err = strict.check_tls("ns/s", &skip, &defaults).unwrap_err();
        assert!(err.message.contains("vaultSkipTLSVerify"), "{err}");
        assert!(err.message.contains("--allow-spc-tls-overrides=false"));
        assert!(err.message.contains("ns/s"));
        // Turning verification back on is never refused.
        assert!(strict.check_tls("ns/s", &defaults, &skip).is_ok());
        for (name, field) in TLS_PARAMETERS {
            let mut chosen = defaults.clone();
            let slot = match name {
                "vaultCACertPath" => &mut chosen.ca_cert,
                "vaultCADirectory" => &mut chosen.ca_directory,
                "vaultTLSServerName" => &mut chosen.server_name,
                "vaultTLSClientCertPath" => &mut chosen.client_cert,
                _ => &mut chosen.client_key,
            };
            *slot = Some("/elsewhere".into());
            assert_eq!(field(&chosen).as_deref(), Some("/elsewhere"));
            let err = strict.check_tls("ns/s", &chosen, &defaults).unwrap_err();
            assert!(err.message.contains(name), "{err}");
            assert!(
                SpcPolicy::default()
                    .check_tls("ns/s", &chosen, &defaults)
                    .is_ok()
            );
        }
    }
}
