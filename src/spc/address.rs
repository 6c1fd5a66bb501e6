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
        // What errors quote: a `user:password@` part may hold a credential.
        let shown = without_userinfo(text);
        let shown = shown.as_str();
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(SpcError::new(format!(
                    "Vault address {} must name an absolute socket path, e.g. unix:///var/run/vault/agent.sock",
                    Shown(shown)
                )));
            }
            return Ok(VaultAddress::Unix {
                socket: PathBuf::from(path),
            });
        }
        let url = reqwest::Url::parse(text).map_err(|e| {
            SpcError::new(format!(
                "Vault address {} is not a URL ({e}); use https://host:port or unix:///path",
                Shown(shown)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(SpcError::new(format!(
                "Vault address {} must start with https://, http:// or unix://",
                Shown(shown)
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

/// `text` with any `user:password@` part of its authority replaced by
/// `***@`, so an error can quote an address without its credentials.
fn without_userinfo(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &text[..scheme_end], &rest[at + 1..]),
        None => text.to_string(),
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
    fn errors_never_quote_credentials_in_an_address() {
        for bad in [
            "ftp://admin:hunter2@vault:8200",
            "https://admin:hunter2@vault:8200 x",
            "unix://admin:hunter2@/run/agent.sock",
            "https://admin:hunter2@vault:8200",
        ] {
            let err = VaultAddress::parse(bad).unwrap_err().message;
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert_eq!(
            without_userinfo("https://u:p@host:1/v1?a=b@c"),
            "https://***@host:1/v1?a=b@c"
        );
        assert_eq!(without_userinfo("https://host/x@y"), "https://host/x@y");
    }

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
