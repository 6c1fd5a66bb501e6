//! Counting what OpenBao received, from its file audit device: the
//! authoritative count, since it sees every request whatever the provider's
//! own metrics claim.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The service account of the simulated Deployment, whose pods share one
/// identity (and so one credential).
pub const SHARED_SERVICE_ACCOUNT: &str = "app";

/// Reads the audit log from where the last read stopped, so each phase
/// counts only its own requests without re-parsing the whole file.
pub struct AuditTail {
    /// The audit log file.
    path: PathBuf,
    /// Bytes already consumed (always at a line end).
    offset: u64,
}

impl AuditTail {
    /// A reader that skips everything logged so far.
    pub fn from_now(path: &Path) -> Self {
        let offset = std::fs::metadata(path).map_or(0, |m| m.len());
        Self {
            path: path.to_owned(),
            offset,
        }
    }

    /// Entries completed since the last call; a line still being written is
    /// left for the next call.
    pub fn read_new(&mut self) -> Vec<Value> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut text = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut text).is_err()
        {
            return Vec::new();
        }
        let Some(end) = text.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        self.offset += end as u64 + 1;
        text[..end]
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect()
    }

    /// The requests and credentials logged since the last read.
    pub fn count_new(&mut self) -> AuditCounts {
        AuditCounts::of(&self.read_new())
    }
}

/// What a kind of request is, by its path: the categories the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `auth/<mount>/login`.
    Login,
    /// `auth/token/renew-self`.
    TokenRenew,
    /// `auth/token/lookup-self`.
    TokenLookup,
    /// KV v2 reads under `secret/data/`.
    KvRead,
    /// `database/creds/<role>`: a new database credential.
    DatabaseCreds,
    /// `pki/issue/<role>`: a new certificate.
    PkiIssue,
    /// `sys/leases/renew`.
    LeaseRenew,
    /// Anything else (should stay zero).
    Other,
}

impl Kind {
    /// The category of an API path.
    fn of(path: &str) -> Kind {
        match path {
            "auth/token/renew-self" => Kind::TokenRenew,
            "auth/token/lookup-self" => Kind::TokenLookup,
            "sys/leases/renew" => Kind::LeaseRenew,
            p if p.starts_with("auth/") && p.ends_with("/login") => Kind::Login,
            p if p.starts_with("secret/data/") => Kind::KvRead,
            p if p.starts_with("database/creds/") => Kind::DatabaseCreds,
            p if p.starts_with("pki/issue/") => Kind::PkiIssue,
            _ => Kind::Other,
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Login => "login (`auth/kubernetes/login`)",
            Kind::TokenRenew => "token renewal (`auth/token/renew-self`)",
            Kind::TokenLookup => "token lookup (`auth/token/lookup-self`)",
            Kind::KvRead => "KV v2 read (`secret/data/…`)",
            Kind::DatabaseCreds => "database credential (`database/creds/app`)",
            Kind::PkiIssue => "certificate (`PUT pki/issue/web`)",
            Kind::LeaseRenew => "lease renewal (`sys/leases/renew`)",
            Kind::Other => "other",
        }
    }
}

/// Requests and issued credentials counted from audit entries.
#[derive(Debug, Default, Clone)]
pub struct AuditCounts {
    /// Request entries by kind.
    pub requests: BTreeMap<Kind, u64>,
    /// Paths of [`Kind::Other`] requests, to explain them if any appear.
    pub other_paths: BTreeMap<String, u64>,
    /// Database credentials issued (successful `database/creds` responses).
    pub leases: u64,
    /// Of those, issued to the shared Deployment identity.
    pub shared_leases: u64,
    /// Certificates issued (successful `pki/issue` responses).
    pub certificates: u64,
    /// Of those, issued to the shared Deployment identity.
    pub shared_certificates: u64,
    /// Successful logins (responses carrying a token).
    pub logins: u64,
    /// Responses that carried an error.
    pub errors: u64,
}

impl AuditCounts {
    /// Counts `entries` (request entries for requests, response entries for
    /// what was actually issued).
    pub fn of(entries: &[Value]) -> AuditCounts {
        let mut counts = AuditCounts::default();
        for entry in entries {
            let path = entry["request"]["path"].as_str().unwrap_or_default();
            let kind = Kind::of(path);
            match entry["type"].as_str() {
                Some("request") => {
                    *counts.requests.entry(kind).or_default() += 1;
                    if kind == Kind::Other {
                        *counts.other_paths.entry(path.to_owned()).or_default() += 1;
                    }
                }
                Some("response") => counts.response(kind, entry),
                _ => {}
            }
        }
        counts
    }

    /// Tallies one response entry.
    fn response(&mut self, kind: Kind, entry: &Value) {
        if !entry["error"].is_null() && entry["error"] != "" {
            self.errors += 1;
            return;
        }
        // The token's metadata names the service account it logged in as.
        let shared = entry["auth"]["metadata"]["service_account_name"] == SHARED_SERVICE_ACCOUNT;
        match kind {
            Kind::DatabaseCreds => {
                self.leases += 1;
                self.shared_leases += u64::from(shared);
            }
            Kind::PkiIssue => {
                self.certificates += 1;
                self.shared_certificates += u64::from(shared);
            }
            Kind::Login => self.logins += 1,
            _ => {}
        }
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests of one kind.
    pub fn of_kind(&self, kind: Kind) -> u64 {
        self.requests.get(&kind).copied().unwrap_or(0)
    }
}
