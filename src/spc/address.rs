//! Vault addresses: `http(s)://host:port` or `unix:///path/to/agent.sock`.

use std::fmt;
use std::path::PathBuf;

use super::SpcError;
use super::shown::Shown;

/// Where Vault (or a Vault Agent / OpenBao Proxy) listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VaultAddress {
    /// A TCP address; `base` is the URL without a trailing slash.
    Tcp {
        /// Scheme, host, port and optional path prefix, e.g. `https://vault:8200`.
        base: String,
    },
    /// A unix socket (Vault Agent's `listener "unix"`): every request goes
    /// over it, whatever the URL's host.
    Unix {
        /// Absolute path of the socket.
        socket: PathBuf,
    },
}

impl VaultAddress {
    /// Parses an address from a flag, the environment or `vaultAddress`.
    pub fn parse(text: &str) -> Result<Self, SpcError> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(SpcError::new(format!(
                    "Vault address {} must name an absolute socket path, e.g. unix:///var/run/vault/agent.sock",
                    Shown(text)
                )));
            }
            return Ok(VaultAddress::Unix {
                socket: PathBuf::from(path),
            });
        }
        let url = reqwest::Url::parse(text).map_err(|e| {
            SpcError::new(format!(
                "Vault address {} is not a URL ({e}); use https://host:port or unix:///path",
                Shown(text)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(SpcError::new(format!(
                "Vault address {} must start with https://, http:// or unix://",
                Shown(text)
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SpcError::new(
                "the Vault address must not contain credentials; remove the user:password@ part",
            ));
        }
        let base = url.as_str().trim_end_matches('/').to_string();
        Ok(VaultAddress::Tcp { base })
    }

    /// The base URL that request paths are appended to.  For a unix socket
    /// the host is a placeholder; the connection goes to the socket.
    pub fn base_url(&self) -> &str {
        match self {
            VaultAddress::Tcp { base } => base,
            VaultAddress::Unix { .. } => "http://localhost",
        }
    }

    /// Whether requests use TLS.
    pub fn is_https(&self) -> bool {
        matches!(self, VaultAddress::Tcp { base } if base.starts_with("https://"))
    }
}

impl fmt::Display for VaultAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAddress::Tcp { base } => f.write_str(base),
            VaultAddress::Unix { socket } => write!(f, "unix://{}", socket.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_unix_addresses() {
        assert_eq!(
            VaultAddress::parse("https://vault.example:8200/").unwrap(),
            VaultAddress::Tcp {
                base: "https://vault.example:8200".into()
            }
        );
        let unix = VaultAddress::parse("unix:///var/run/vault/agent.sock").unwrap();
        assert_eq!(
            unix,
            VaultAddress::Unix {
                socket: "/var/run/vault/agent.sock".into()
            }
        );
        assert_eq!(unix.to_string(), "unix:///var/run/vault/agent.sock");
        assert_eq!(unix.base_url(), "http://localhost");
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "vault:8200",
            "ftp://vault",
            "unix://relative.sock",
            "https://u:p@vault",
            "",
        ] {
            assert!(VaultAddress::parse(bad).is_err(), "{bad}");
        }
        let err = VaultAddress::parse("https://user:s3cret@vault").unwrap_err();
        assert!(!err.message.contains("s3cret"));
    }
}
