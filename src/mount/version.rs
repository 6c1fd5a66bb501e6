//! Object versions: an HMAC-SHA256 over the object's configuration and its
//! content.  Versions change exactly when content changes, stay stable across
//! restarts (the key is persistent), and reveal nothing about the content.

use aws_lc_rs::hmac;
use base64::Engine;

use crate::spc::{MountConfig, ObjectSpec};

/// Computes the version of `object` with `content` for the mount `cfg`.
///
/// The Vault address and namespace and the pod's namespace are included so
/// that equal content in two tenants gives different versions.
pub fn object_version(
    key: &hmac::Key,
    cfg: &MountConfig,
    object: &ObjectSpec,
    content: &[u8],
) -> String {
    let mut ctx = hmac::Context::with_key(key);
    for part in [
        object.fingerprint.as_bytes(),
        cfg.connection.address.to_string().as_bytes(),
        cfg.connection.namespace.as_deref().unwrap_or("").as_bytes(),
        cfg.pod.namespace.as_bytes(),
    ] {
        // Length-prefix each part so that no two different inputs collide.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(content);
    base64::engine::general_purpose::URL_SAFE.encode(ctx.sign().as_ref())
}
