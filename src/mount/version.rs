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
    let mut ctx = context(key, cfg, object);
    ctx.update(content);
    finish(ctx)
}

/// The version of the file `objectName/<secret_key>` of a `secretKey: "*"`
/// object.  The key's name is part of the input, so two keys with equal
/// values get different versions.
pub fn key_version(
    key: &hmac::Key,
    cfg: &MountConfig,
    object: &ObjectSpec,
    secret_key: &str,
    content: &[u8],
) -> String {
    let mut ctx = context(key, cfg, object);
    for part in [b"key".as_slice(), secret_key.as_bytes()] {
        prefixed(&mut ctx, part);
    }
    ctx.update(content);
    finish(ctx)
}

/// The version of a `secretKey: "*"` object as a whole: over every key's
/// name and content, so it changes when any key is added, removed or
/// changed, and exists even when the secret has no keys.
pub fn set_version(
    key: &hmac::Key,
    cfg: &MountConfig,
    object: &ObjectSpec,
    files: &[(String, crate::secret::SecretBytes)],
) -> String {
    let mut ctx = context(key, cfg, object);
    prefixed(&mut ctx, b"set");
    for (name, content) in files {
        prefixed(&mut ctx, name.as_bytes());
        prefixed(&mut ctx, content.expose());
    }
    finish(ctx)
}

/// The HMAC over the object's configuration and the tenant.
fn context(key: &hmac::Key, cfg: &MountConfig, object: &ObjectSpec) -> hmac::Context {
    let mut ctx = hmac::Context::with_key(key);
    for part in [
        object.fingerprint.as_bytes(),
        cfg.connection.address.to_string().as_bytes(),
        cfg.connection.namespace.as_deref().unwrap_or("").as_bytes(),
        cfg.pod.namespace.as_bytes(),
    ] {
        prefixed(&mut ctx, part);
    }
    ctx
}

/// Length-prefixes a part so that no two different inputs collide.
fn prefixed(ctx: &mut hmac::Context, part: &[u8]) {
    ctx.update(&(part.len() as u64).to_be_bytes());
    ctx.update(part);
}

/// The version text.
fn finish(ctx: hmac::Context) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(ctx.sign().as_ref())
}
