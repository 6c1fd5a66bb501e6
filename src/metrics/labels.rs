//! Label values and label sets.  Every value comes from a closed set (or an
//! HTTP status number), so no label can ever carry a pod, namespace,
//! SecretProviderClass, path or secret: callers pass enums, never strings.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use tonic::Code;

/// A Mount's outcome as its gRPC code, spelled as Go's `codes.Code.String()`
/// (`OK`, `InvalidArgument`, …) so dashboards shared with Go providers match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrpcCode(pub Code);

impl GrpcCode {
    /// The code's name.
    pub fn as_str(self) -> &'static str {
        match self.0 {
            Code::Ok => "OK",
            Code::Cancelled => "Canceled",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
        }
    }
}

impl EncodeLabelValue for GrpcCode {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// What a Vault request did, from a fixed set: the path itself is never a
/// label (it names secrets, and its cardinality is unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VaultOperation {
    /// `auth/<mount>/login`.
    Login,
    /// A GET or LIST of anything that is not one of the others.
    Read,
    /// A PUT or POST of anything that is not one of the others.
    Write,
    /// Token or lease renewal.
    Renew,
    /// Token lookup.
    Lookup,
}

impl VaultOperation {
    /// Every operation, to pre-create series and to test the set is closed.
    pub const ALL: [VaultOperation; 5] = [
        VaultOperation::Login,
        VaultOperation::Read,
        VaultOperation::Write,
        VaultOperation::Renew,
        VaultOperation::Lookup,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            VaultOperation::Login => "login",
            VaultOperation::Read => "read",
            VaultOperation::Write => "write",
            VaultOperation::Renew => "renew",
            VaultOperation::Lookup => "lookup",
        }
    }
}

impl EncodeLabelValue for VaultOperation {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// How a Vault HTTP exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VaultStatus {
    /// Vault answered with this HTTP status.
    Http(u16),
    /// No usable HTTP answer: connect failure, timeout, broken connection.
    Error,
}

impl EncodeLabelValue for VaultStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            VaultStatus::Http(code) => write!(encoder, "{code}"),
            VaultStatus::Error => encoder.write_str("error"),
        }
    }
}

/// Which cache a hit, miss or coalesced call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKind {
    /// Vault tokens per identity.
    Token,
    /// Short-lived GET responses without a lease.
    Response,
    /// Leased (dynamic) credentials.
    Lease,
}

impl CacheKind {
    /// Every cache, to pre-create series so rates exist from the start.
    pub const ALL: [CacheKind; 3] = [CacheKind::Token, CacheKind::Response, CacheKind::Lease];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Token => "token",
            CacheKind::Response => "response",
            CacheKind::Lease => "lease",
        }
    }
}

impl EncodeLabelValue for CacheKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Labels of the Mount families.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct MountLabels {
    /// The gRPC code the Mount answered with.
    pub code: GrpcCode,
}

/// Labels of `vault_csi_vault_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RequestLabels {
    /// What the request did.
    pub operation: VaultOperation,
    /// How it ended.
    pub status: VaultStatus,
}

/// Labels of the Vault request duration histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct OperationLabels {
    /// What the request did.
    pub operation: VaultOperation,
}

/// Labels of the cache families.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct CacheLabels {
    /// Which cache.
    pub cache: CacheKind,
}
