//! Rules for what the parser accepts but is probably wrong.  Each rule is
//! one function over a [`Context`]; adding a rule is adding a function and
//! a line in [`RULES`].

use super::documents::Manifest;
use super::finding::Finding;
use super::names::closest;
use super::objects::{ObjectEntry, ObjectList};
use crate::spc::{
    DRIVER_ATTRIBUTES, KUBELET_ATTRIBUTE_PREFIX, LEGACY_PARAMETERS, PARAMETERS, VaultAddress,
    object_fields, parse_go_bool,
};

/// What a rule looks at.
pub(super) struct Context<'a> {
    /// The SecretProviderClass.
    pub manifest: &'a Manifest,
    /// Its `objects`, read loosely.
    pub objects: &'a ObjectList,
    /// Whether the online checks run (they know each mount's engine, so
    /// the offline guesses about it are left out).
    pub online: bool,
}

/// A rule: adds its findings for one SPC.
type Rule = fn(&Context<'_>, &mut Vec<Finding>);

/// Every offline rule, run in this order.
pub(super) const RULES: &[Rule] = &[
    unknown_parameters,
    unknown_object_fields,
    duplicate_object_names,
    file_and_folder_names,
    skip_tls_verify,
    plain_http,
    kv2_path_guess,
    secret_args_on_read,
    encoding_without_key,
    permission_written_in_decimal,
    secret_objects,
];

/// Parameters the provider does not read: misspelt (an error: the
/// intended setting is silently missing), legacy, set by the driver, or
/// simply unknown.
fn unknown_parameters(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for name in ctx.manifest.parameters.keys() {
        let name = name.as_str();
        if PARAMETERS.contains(&name) {
            continue;
        }
        let at = &ctx.manifest.at;
        let finding = if LEGACY_PARAMETERS.contains(&name) {
            Finding::warning(
                "ignored-parameter",
                at,
                format!("parameter {name} was removed from HashiCorp's provider and is ignored"),
            )
            .fix(format!("remove {name}"))
        } else if DRIVER_ATTRIBUTES.contains(&name) || name.starts_with(KUBELET_ATTRIBUTE_PREFIX) {
            Finding::warning(
                "driver-parameter",
                at,
                format!("parameter {name} is set by the driver on every mount, over this value"),
            )
            .fix(format!("remove {name}"))
        } else if let Some(meant) = closest(name, PARAMETERS) {
            Finding::error(
                "misspelt-parameter",
                at,
                format!("unknown parameter {name} is ignored, so {meant} is not set"),
            )
            .fix(format!("did you mean {meant}? rename {name} to {meant}"))
        } else {
            Finding::warning(
                "unknown-parameter",
                at,
                format!("unknown parameter {name} is ignored by the provider"),
            )
            .fix("remove it, or check its name in the README's parameter table")
        };
        out.push(finding.parameter(name));
    }
}

/// Object fields the parser ignores.
fn unknown_object_fields(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let known = object_fields();
    for entry in ctx.objects.entries() {
        let Some(fields) = &entry.fields else {
            continue;
        };
        for name in fields.keys() {
            if known.contains(&name.as_str()) {
                continue;
            }
            let at = &ctx.manifest.at;
            let finding = match closest(name, known) {
                Some(meant) => Finding::error(
                    "misspelt-field",
                    at,
                    format!("unknown field {name} is ignored, so {meant} is not set"),
                )
                .fix(format!("did you mean {meant}? rename {name} to {meant}")),
                None => Finding::warning(
                    "unknown-field",
                    at,
                    format!("unknown field {name} is ignored by the provider"),
                )
                .fix(format!(
                    "remove it; an object's fields are {}",
                    known.join(", ")
                )),
            };
            out.push(finding.object(entry.label()).parameter(name));
        }
    }
}

/// Two objects with one objectName would write one file.
fn duplicate_object_names(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for name in ctx.objects.duplicates() {
        let count = ctx
            .objects
            .entries()
            .iter()
            .filter(|e| e.name == name)
            .count();
        out.push(
            Finding::error(
                "duplicate-object-name",
                &ctx.manifest.at,
                format!("objectName {name} is used by {count} objects; the mount is refused"),
            )
            .object(name)
            .parameter("objectName")
            .fix("give every object its own objectName"),
        );
    }
}

/// `a` and `a/b` cannot both be written: `a` would be a file and a folder
/// (unless `a` is a `secretKey: "*"` object, which is a folder).
fn file_and_folder_names(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let entries = ctx.objects.entries();
    let is_folder = |e: &ObjectEntry| {
        e.fields
            .as_ref()
            .and_then(|f| f.get("secretKey"))
            .is_some_and(|k| k == "*")
    };
    for file in entries
        .iter()
        .filter(|e| !e.name.is_empty() && !is_folder(e))
    {
        let folder = format!("{}/", file.name);
        if let Some(nested) = entries.iter().find(|e| e.name.starts_with(&folder)) {
            out.push(
                Finding::error(
                    "object-name-conflict",
                    &ctx.manifest.at,
                    format!(
                        "objectName {} is a file, but objectName {} needs a folder of that name; \
                         the driver cannot write both",
                        file.name, nested.name
                    ),
                )
                .object(&file.name)
                .parameter("objectName")
                .fix("rename one of the two objects"),
            );
        }
    }
}

/// `vaultSkipTLSVerify: "true"` accepts any certificate.
fn skip_tls_verify(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(value) = ctx.manifest.parameters.get("vaultSkipTLSVerify") else {
        return;
    };
    if parse_go_bool(value) == Some(true) {
        out.push(
            Finding::warning(
                "skip-tls-verify",
                &ctx.manifest.at,
                "vaultSkipTLSVerify is true: any server can pose as Vault and receive the pod's token",
            )
            .parameter("vaultSkipTLSVerify")
            .fix(
                "remove it and trust Vault's CA instead (vaultCACertPath, or -vault-tls-ca-cert on the provider)",
            ),
        );
    }
}

/// Plain `http://` to a host that is neither loopback nor a cluster
/// service: the pod's token and the secrets cross a network unencrypted.
/// In-cluster names (`vault`, `vault.vault`, `*.svc`, `*.svc.*`) are left
/// alone: HashiCorp's own examples use them, and that traffic stays on the
/// cluster network.
fn plain_http(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(text) = ctx.manifest.parameters.get("vaultAddress") else {
        return;
    };
    let Ok(VaultAddress::Tcp { base }) = VaultAddress::parse(text) else {
        return;
    };
    let Ok(url) = reqwest::Url::parse(&base) else {
        return;
    };
    if url.scheme() != "http" {
        return;
    }
    let host = url.host_str().unwrap_or_default();
    let outside = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => {
            let labels: Vec<&str> = host.split('.').collect();
            host != "localhost" && labels.len() > 2 && !labels.contains(&"svc")
        }
    };
    if outside {
        out.push(
            Finding::warning(
                "plain-http",
                &ctx.manifest.at,
                format!(
                    "vaultAddress {text} is plain http to a host outside the cluster: the pod's token \
                     and the secrets travel unencrypted"
                ),
            )
            .parameter("vaultAddress")
            .fix("use https:// (and vaultCACertPath for a private CA)"),
        );
    }
}

/// Offline guess at a KV v2 path written without `data/`: only for the
/// `secret/` mount, which is KV v2 on dev servers and in most
/// installations.  The online check replaces the guess with the engine's
/// real version.
fn kv2_path_guess(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    if ctx.online {
        return;
    }
    for entry in ctx.objects.entries() {
        if !is_read(entry) {
            continue;
        }
        let Some(path) = entry.text("secretPath").map(normalise_path) else {
            continue;
        };
        let mut parts = path.splitn(2, '/');
        let (Some("secret"), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let second = rest.split('/').next().unwrap_or_default();
        if matches!(second, "data" | "metadata" | "subkeys" | "config") {
            continue;
        }
        out.push(
            Finding::warning(
                "kv2-path",
                &ctx.manifest.at,
                format!(
                    "secretPath {path} has no data/: if secret/ is a KV version 2 engine (as on dev \
                     servers and in most installations) the read fails with 404; KV version 1 reads it fine"
                ),
            )
            .object(entry.label())
            .parameter("secretPath")
            .fix(format!(
                "for KV v2 write secretPath: secret/data/{rest}; run check with --vault-addr and a token to know the version"
            )),
        );
    }
}

/// `secretArgs` on a read are never sent.
fn secret_args_on_read(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for entry in ctx.objects.entries() {
        let has_args = entry
            .fields
            .as_ref()
            .is_some_and(|f| f.contains_key("secretArgs"));
        if has_args && is_read(entry) {
            out.push(
                Finding::warning(
                    "secret-args-on-read",
                    &ctx.manifest.at,
                    "secretArgs are sent only with PUT or POST; this read ignores them",
                )
                .object(entry.label())
                .parameter("secretArgs")
                .fix("remove secretArgs, or set method: PUT if the endpoint takes them (e.g. pki/issue/<role>)"),
            );
        }
    }
}

/// `encoding` decodes a `secretKey`'s value; without one the whole
/// response is written as JSON and the encoding does nothing.
fn encoding_without_key(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for entry in ctx.objects.entries() {
        let encoding = entry
            .text("encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let decodes = !matches!(encoding.as_str(), "" | "utf-8" | "utf8");
        if decodes && entry.text("secretKey").is_none_or(str::is_empty) {
            out.push(
                Finding::warning(
                    "encoding-without-key",
                    &ctx.manifest.at,
                    format!(
                        "encoding {encoding} applies only to a secretKey's value; without secretKey the \
                         whole response is written as JSON, undecoded"
                    ),
                )
                .object(entry.label())
                .parameter("encoding")
                .fix("add the secretKey whose value is encoded, or remove encoding"),
            );
        }
    }
}

/// `filePermission: 400` is decimal 400, mode 0620, not 0400.
fn permission_written_in_decimal(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for entry in ctx.objects.entries() {
        let Some(literal) = entry.permission_literal.as_deref() else {
            continue;
        };
        if literal.len() < 3
            || literal.starts_with('0')
            || !literal.bytes().all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(mode) = literal.parse::<u32>() else {
            continue;
        };
        if mode > 0o777 {
            // The parser refuses it already.
            continue;
        }
        let as_octal = literal.bytes().all(|b| (b'0'..=b'7').contains(&b));
        let fix = if as_octal {
            format!(
                "write 0{literal} if you meant mode 0{literal}, or 0{mode:o} to keep mode 0{mode:o}"
            )
        } else {
            format!("write 0{mode:o} to say so in octal")
        };
        out.push(
            Finding::warning(
                "decimal-permission",
                &ctx.manifest.at,
                format!(
                    "filePermission {literal} has no leading 0, so it is decimal: the file gets mode 0{mode:o}"
                ),
            )
            .object(entry.label())
            .parameter("filePermission")
            .fix(fix),
        );
    }
}

/// `secretObjects` sync mounted objects into Kubernetes Secrets: each
/// needs a name, a type and data naming objects this SPC mounts.
fn secret_objects(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let at = &ctx.manifest.at;
    let names: Vec<&str> = ctx
        .objects
        .entries()
        .iter()
        .map(|e| e.name.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    for (i, secret) in ctx.manifest.secret_objects.iter().enumerate() {
        let which = if secret.secret_name.is_empty() {
            format!("secretObjects entry {}", i + 1)
        } else {
            format!("secretObjects {}", secret.secret_name)
        };
        if secret.secret_name.is_empty() {
            out.push(
                Finding::error("secret-objects", at, format!("{which} has no secretName"))
                    .parameter("secretObjects")
                    .fix("set secretName to the Kubernetes Secret to create"),
            );
        }
        if secret.kind.is_empty() {
            out.push(
                Finding::error("secret-objects", at, format!("{which} has no type"))
                    .parameter("secretObjects")
                    .fix("set type, e.g. Opaque or kubernetes.io/tls"),
            );
        }
        if secret.data.is_empty() {
            out.push(
                Finding::error("secret-objects", at, format!("{which} has no data"))
                    .parameter("secretObjects")
                    .fix(
                        "list data entries: objectName (a mounted object) and key (in the Secret)",
                    ),
            );
        }
        for data in &secret.data {
            if data.key.is_empty() {
                out.push(
                    Finding::error(
                        "secret-objects",
                        at,
                        format!("{which}: a data entry has no key"),
                    )
                    .parameter("secretObjects")
                    .fix("set key: the key of the Kubernetes Secret to fill"),
                );
            }
            if names.contains(&data.object_name.as_str()) {
                continue;
            }
            let fix = match closest(&data.object_name, &names) {
                Some(meant) => format!("did you mean {meant}? use an objectName listed in objects"),
                None => format!(
                    "use one of the objectNames listed in objects: {}",
                    if names.is_empty() {
                        "(none)".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            };
            out.push(
                Finding::error(
                    "secret-object-name",
                    at,
                    format!(
                        "{which} takes objectName {:?}, which no object produces; the Secret is not synced",
                        data.object_name
                    ),
                )
                .object(&data.object_name)
                .parameter("secretObjects")
                .fix(fix),
            );
        }
    }
}

/// Whether the entry reads (GET, LIST, or no method).
fn is_read(entry: &ObjectEntry) -> bool {
    matches!(
        entry
            .text("method")
            .unwrap_or_default()
            .to_ascii_uppercase()
            .as_str(),
        "" | "GET" | "LIST"
    )
}

/// `secretPath` as the parser normalises it, without the query.
fn normalise_path(text: &str) -> String {
    let path = text.trim().split('?').next().unwrap_or_default();
    let path = path.trim_start_matches('/');
    path.strip_prefix("v1/")
        .unwrap_or(path)
        .trim_end_matches('/')
        .to_string()
}
