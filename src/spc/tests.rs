use serde_json::json;

use super::*;

fn request(attributes: serde_json::Value) -> MountRequest {
    MountRequest {
        attributes: attributes.to_string(),
        secrets: "null".into(),
        target_path: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/v/mount".into(),
        permission: "420".into(),
        current_object_version: vec![],
    }
}

fn base() -> serde_json::Value {
    json!({
        "roleName": "app",
        "objects": "- objectName: db\n  secretPath: secret/data/db\n  secretKey: password\n",
        "csi.storage.k8s.io/pod.name": "web-0",
        "csi.storage.k8s.io/pod.namespace": "team-a",
        "csi.storage.k8s.io/pod.uid": "uid-1",
        "csi.storage.k8s.io/serviceAccount.name": "web",
        "secretProviderClass": "db-creds",
        "somethingUnknown": "ignored",
    })
}

fn with(extra: serde_json::Value) -> MountRequest {
    let mut attrs = base();
    for (k, v) in extra.as_object().unwrap() {
        attrs[k] = v.clone();
    }
    request(attrs)
}

#[test]
fn parses_a_minimal_request_with_defaults() {
    let cfg = parse(&request(base()), &Defaults::default()).unwrap();
    assert_eq!(cfg.spc, "team-a/db-creds");
    assert_eq!(cfg.pod.name, "web-0");
    assert_eq!(cfg.pod.service_account, "web");
    assert_eq!(cfg.auth.role, "app");
    assert_eq!(cfg.auth.mount, "kubernetes");
    assert_eq!(cfg.auth.audience, "vault");
    assert_eq!(cfg.connection.address.to_string(), "https://127.0.0.1:8200");
    assert_eq!(cfg.default_mode, 0o644);
    assert!(matches!(cfg.credential, Credential::SelfMint));
    assert!(cfg.auth.mint_audiences.is_empty());
    assert_eq!(cfg.objects.len(), 1);
    assert_eq!(cfg.objects[0].request.path, "secret/data/db");
    assert!(matches!(&cfg.objects[0].content, Content::Key(k) if k == "password"));
}

#[test]
fn precedence_is_defaults_then_spc() {
    let defaults = Defaults {
        vault_address: "http://flag:8200".into(),
        vault_namespace: Some("flag-ns".into()),
        auth_mount: Some("flag-mount".into()),
        tls: TlsConfig {
            ca_cert: Some("/flag/ca.pem".into()),
            ..Default::default()
        },
        ..Defaults::default()
    };
    let cfg = parse(&request(base()), &defaults).unwrap();
    assert_eq!(cfg.connection.address.to_string(), "http://flag:8200");
    assert_eq!(cfg.connection.namespace.as_deref(), Some("flag-ns"));
    assert_eq!(cfg.auth.mount, "flag-mount");
    assert_eq!(cfg.connection.tls.ca_cert.as_deref(), Some("/flag/ca.pem"));

    let cfg = parse(
        &with(json!({
            "vaultAddress": "http://spc:8200", "vaultNamespace": "spc-ns",
            "vaultAuthMountPath": "spc-mount", "vaultCACertPath": "/spc/ca.pem",
            "vaultSkipTLSVerify": "T", "audience": "custom",
        })),
        &defaults,
    )
    .unwrap();
    assert_eq!(cfg.connection.address.to_string(), "http://spc:8200");
    assert_eq!(cfg.connection.namespace.as_deref(), Some("spc-ns"));
    assert_eq!(cfg.auth.mount, "spc-mount");
    assert_eq!(cfg.auth.audience, "custom");
    assert_eq!(cfg.connection.tls.ca_cert.as_deref(), Some("/spc/ca.pem"));
    assert!(cfg.connection.tls.skip_verify);
}

#[test]
fn jwt_method_defaults_to_jwt_mount_and_legacy_mount_name_works() {
    let cfg = parse(
        &with(json!({"vaultAuthMethod": "JWT"})),
        &Defaults::default(),
    )
    .unwrap();
    assert_eq!(cfg.auth.method, AuthMethod::Jwt);
    assert_eq!(cfg.auth.mount, "jwt");
    let cfg = parse(
        &with(json!({"vaultKubernetesMountPath": "k8s-east"})),
        &Defaults::default(),
    )
    .unwrap();
    assert_eq!(cfg.auth.mount, "k8s-east");
}

#[test]
fn rejects_bad_parameters_with_clear_messages() {
    let cases = [
        (json!({"roleName": ""}), "missing 'roleName'"),
        (
            json!({"vaultAuthMountPath": "a", "vaultKubernetesMountPath": "b"}),
            "both vaultAuthMountPath",
        ),
        (
            json!({"vaultSkipTLSVerify": "yes"}),
            "vaultSkipTLSVerify \"yes\"",
        ),
        (json!({"vaultAddress": "vault:8200"}), "Vault address"),
        (json!({"vaultAuthMethod": "ldap"}), "vaultAuthMethod"),
        (json!({"objects": ""}), "missing 'objects'"),
        (json!({"objects": "[]"}), "no objects"),
        (
            json!({"objects": "- objectName: [unclosed"}),
            "not a valid YAML",
        ),
    ];
    for (extra, expected) in cases {
        let err = parse(&with(extra.clone()), &Defaults::default()).unwrap_err();
        assert!(err.message.contains(expected), "{extra}: {}", err.message);
    }
}

#[test]
fn rejects_malformed_request_fields() {
    let mut r = request(base());
    r.attributes = "[1,2]".into();
    assert!(
        parse(&r, &Defaults::default())
            .unwrap_err()
            .message
            .contains("attributes")
    );
    let mut r = request(base());
    r.permission = "999".into();
    assert!(
        parse(&r, &Defaults::default())
            .unwrap_err()
            .message
            .contains("permission")
    );
    let mut r = request(base());
    r.secrets = "{\"a\": 1}".into();
    assert!(
        parse(&r, &Defaults::default())
            .unwrap_err()
            .message
            .contains("secrets")
    );
    let mut r = request(base());
    r.secrets = "{}".into();
    r.permission = "384".into();
    assert_eq!(parse(&r, &Defaults::default()).unwrap().default_mode, 0o600);
}

#[test]
fn finds_the_token_for_the_audience_in_secrets_first() {
    let tokens = |t: &str| {
        json!({"vault": {"token": t, "expirationTimestamp": "2030-01-01T00:00:00Z"}}).to_string()
    };
    let mut r = with(json!({ TOKENS_ATTRIBUTE: tokens("from-attributes") }));
    let cfg = parse(&r, &Defaults::default()).unwrap();
    assert!(
        matches!(&cfg.credential, Credential::ServiceAccount(t) if t.token.expose() == "from-attributes")
    );

    r.secrets = json!({ TOKENS_ATTRIBUTE: tokens("from-secrets") }).to_string();
    let cfg = parse(&r, &Defaults::default()).unwrap();
    assert!(
        matches!(&cfg.credential, Credential::ServiceAccount(t) if t.token.expose() == "from-secrets")
    );

    let cfg = parse(
        &with(json!({ TOKENS_ATTRIBUTE: tokens("x"), "audience": "other" })),
        &Defaults::default(),
    )
    .unwrap();
    assert!(matches!(cfg.credential, Credential::SelfMint));
    assert_eq!(cfg.auth.mint_audiences, vec!["other".to_string()]);
}

#[test]
fn objects_follow_hashicorp_semantics() {
    let yaml = r#"
- objectName: a
  secretPath: v1/secret/data/app?version=2
  secretKey: k
  encoding: BASE64
  filePermission: 0600
- objectName: dir/b
  secretPath: /pki/issue/web
  method: put
  secretArgs:
    common_name: web.example.com
    ttl: 24h
  unknownField: ignored
- objectName: c
  secretPath: kv1/app
  filePermission: 420
"#;
    let objects = parse_objects(yaml).unwrap();
    assert_eq!(objects[0].request.path, "secret/data/app");
    assert_eq!(
        objects[0].request.query,
        vec![("version".to_string(), "2".to_string())]
    );
    assert_eq!(objects[0].encoding, Encoding::Base64);
    assert_eq!(objects[0].mode, Some(0o600));
    assert_eq!(objects[1].name.as_str(), "dir/b");
    assert_eq!(objects[1].request.method, Method::Put);
    assert_eq!(objects[1].request.path, "pki/issue/web");
    assert_eq!(
        objects[1].request.body.as_deref(),
        Some(r#"{"common_name":"web.example.com","ttl":"24h"}"#)
    );
    assert_eq!(objects[2].mode, Some(420));
    assert_eq!(objects[2].request.to_string(), "GET kv1/app");
    assert_ne!(objects[0].fingerprint, objects[2].fingerprint);
}

#[test]
fn rejects_unsafe_and_duplicate_object_names() {
    for (name, expected) in [
        ("/etc/passwd", "absolute"),
        ("../x", "starts with"),
        ("a/../b", "\"..\" element"),
        ("a//b", "empty path element"),
        ("./a", "\".\" element"),
        ("", "empty"),
    ] {
        let yaml = format!("- objectName: {name:?}\n  secretPath: secret/data/x\n");
        let err = parse_objects(&yaml).unwrap_err();
        assert!(err.message.contains(expected), "{name}: {}", err.message);
    }
    let long = "x".repeat(256);
    let err = parse_objects(&format!("- objectName: {long}\n  secretPath: s/x\n")).unwrap_err();
    assert!(err.message.contains("255"), "{}", err.message);

    let yaml = "- objectName: a\n  secretPath: s/x\n- objectName: a\n  secretPath: s/y\n";
    let err = parse_objects(yaml).unwrap_err();
    assert!(
        err.message.contains("duplicate objectName: a"),
        "{}",
        err.message
    );
}

#[test]
fn rejects_bad_object_fields() {
    for (yaml, expected) in [
        (
            "- objectName: a\n  secretPath: s/x\n  encoding: rot13\n",
            "invalid encoding type",
        ),
        (
            "- objectName: a\n  secretPath: s/x\n  method: DELETE\n",
            "method \"DELETE\"",
        ),
        (
            "- objectName: a\n  secretPath: s/x\n  filePermission: 0o1777\n",
            "filePermission",
        ),
        ("- objectName: a\n  secretPath: ''\n", "secretPath is empty"),
        ("- objectName: a\n  secretPath: secret/../sys/x\n", "\"..\""),
        ("objectName: a\n", "not a valid YAML list"),
    ] {
        let err = parse_objects(yaml).unwrap_err();
        assert!(err.message.contains(expected), "{yaml}: {}", err.message);
    }
}

#[test]
fn approle_and_token_credentials_come_from_the_secrets() {
    let mut r = with(json!({"vaultAuthMethod": "AppRole", "roleName": ""}));
    r.secrets = json!({"roleId": "rid", "secretId": "sid"}).to_string();
    let cfg = parse(&r, &Defaults::default()).unwrap();
    assert_eq!(cfg.auth.method, AuthMethod::AppRole);
    assert_eq!(cfg.auth.mount, "approle");
    assert!(
        matches!(&cfg.credential, Credential::AppRole { role_id, secret_id } if role_id.expose() == "rid" && secret_id.expose() == "sid")
    );
    r.secrets = json!({"role_id": "rid", "secret_id": "sid"}).to_string();
    assert!(matches!(
        parse(&r, &Defaults::default()).unwrap().credential,
        Credential::AppRole { .. }
    ));

    r.secrets = json!({"role_id": "rid"}).to_string();
    let err = parse(&r, &Defaults::default()).unwrap_err();
    assert!(
        err.missing_credential && err.message.contains("secretId (or secret_id)"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("rid"));

    let mut r = with(json!({"vaultAuthMethod": "token"}));
    r.secrets = json!({"token": "s.abc"}).to_string();
    let cfg = parse(&r, &Defaults::default()).unwrap();
    assert_eq!(cfg.auth.mount, "token");
    assert!(matches!(&cfg.credential, Credential::VaultToken(t) if t.expose() == "s.abc"));
    r.secrets = "null".into();
    let err = parse(&r, &Defaults::default()).unwrap_err();
    assert!(
        err.missing_credential && err.message.contains("key token"),
        "{}",
        err.message
    );
}

#[test]
fn templates_parse_once_and_exclude_secret_key_and_encoding() {
    let yaml = r#"
- objectName: app.env
  secretPath: secret/data/app
  template: |
    USER={{ username }}
- objectName: all
  secretPath: secret/data/app
  secretKey: "*"
- objectName: plain
  secretPath: secret/data/app
  secretKey: username
"#;
    let objects = parse_objects(yaml).unwrap();
    let Content::Template(t) = &objects[0].content else {
        panic!("not a template: {:?}", objects[0].content)
    };
    assert_eq!(t.source(), "USER={{ username }}\n");
    assert!(objects[0].fingerprint.contains("USER={{ username }}"));
    assert!(matches!(objects[1].content, Content::EveryKey));
    // Objects without a template keep the fingerprint (and so the versions)
    // they had before templates existed.
    assert!(!objects[2].fingerprint.contains("template"));

    for (extra, expected) in [
        ("  secretKey: username\n", "either secretKey or template"),
        ("  secretKey: \"*\"\n", "either secretKey or template"),
        ("  encoding: base64\n", "b64decode"),
    ] {
        let yaml = format!(
            "- objectName: t\n  secretPath: secret/data/app\n  template: \"{{{{ a }}}}\"\n{extra}"
        );
        let err = parse_objects(&yaml).unwrap_err().message;
        assert!(
            err.contains("object \"t\"") && err.contains(expected),
            "{err}"
        );
    }
    let yaml = "- objectName: t\n  secretPath: secret/data/app\n  encoding: utf-8\n  template: \"{{ a }}\"\n";
    assert!(parse_objects(yaml).is_ok());
}

#[test]
fn template_syntax_errors_name_the_object_and_line() {
    let yaml = "- objectName: cfg.json\n  secretPath: secret/data/app\n  template: |\n    {\n      \"user\": {{ username | tojson }},\n      \"pass\": {{ password \n    }\n";
    let err = parse_objects(yaml).unwrap_err().message;
    assert!(err.contains("object \"cfg.json\""), "{err}");
    assert!(err.contains("syntax error on line 4"), "{err}");
}

#[test]
fn a_file_cannot_be_another_objects_directory() {
    for yaml in [
        "- objectName: a\n  secretPath: kv/x\n- objectName: a/b\n  secretPath: kv/y\n",
        "- objectName: a\n  secretPath: kv/x\n- objectName: a/b\n  secretPath: kv/y\n  secretKey: \"*\"\n",
    ] {
        let err = parse_objects(yaml).unwrap_err().message;
        assert!(err.contains("needs \"a\" to be a directory"), "{err}");
    }
    // A `*` object is a directory other objects may write into.
    parse_objects(
        "- objectName: a\n  secretPath: kv/x\n  secretKey: \"*\"\n- objectName: a/b\n  secretPath: kv/y\n",
    )
    .unwrap();
}

/// Defaults with `--vault-addr=https://vault.internal:8200`, an allow list
/// and TLS overrides off.
fn guarded() -> Defaults {
    let vault_address = "https://vault.internal:8200".to_string();
    let allowed = AddressAllowList::parse(
        "*.vault.svc,unix:///run/vault/agent.sock",
        &VaultAddress::parse(&vault_address).unwrap(),
    )
    .unwrap();
    Defaults {
        vault_address,
        tls: TlsConfig {
            ca_cert: Some("/etc/vault/ca.pem".into()),
            ..Default::default()
        },
        policy: SpcPolicy {
            allowed_addresses: allowed,
            allow_tls_overrides: false,
        },
        ..Defaults::default()
    }
}

#[test]
fn guardrails_refuse_addresses_outside_the_allow_list() {
    let defaults = guarded();
    for ok in [
        json!({}),
        json!({"vaultAddress": "https://vault.internal:8200"}),
        json!({"vaultAddress": "http://vault.vault.svc:8200"}),
        json!({"vaultAddress": "unix:///run/vault/agent.sock"}),
    ] {
        let cfg = parse(&with(ok.clone()), &defaults).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(
            cfg.connection.tls.ca_cert.as_deref(),
            Some("/etc/vault/ca.pem")
        );
    }
    for denied in [
        "https://attacker.example:8200",
        "https://vault.internal:8201",
        "http://a.b.vault.svc:8200",
        "unix:///tmp/agent.sock",
    ] {
        let err = parse(&with(json!({"vaultAddress": denied})), &defaults).unwrap_err();
        assert!(err.message.contains("team-a/db-creds"), "{err}");
        assert!(err.message.contains(denied.trim_end_matches('/')), "{err}");
        assert!(
            err.message
                .contains("https://vault.internal:8200, *.vault.svc, unix:///run/vault/agent.sock"),
            "{err}"
        );
        assert!(!err.missing_credential);
    }
    // Without the flag, any address goes, as with HashiCorp's provider.
    let open = Defaults::default();
    assert!(
        parse(
            &with(json!({"vaultAddress": "https://attacker.example"})),
            &open
        )
        .is_ok()
    );
}

#[test]
fn guardrails_refuse_tls_overrides_that_change_the_providers_settings() {
    let defaults = guarded();
    for key in [
        "vaultCACertPath",
        "vaultCADirectory",
        "vaultTLSServerName",
        "vaultTLSClientCertPath",
        "vaultTLSClientKeyPath",
    ] {
        let err = parse(&with(json!({ key: "/tmp/x" })), &defaults).unwrap_err();
        assert!(err.message.contains(key), "{err}");
        assert!(
            err.message.contains("--allow-spc-tls-overrides=false"),
            "{err}"
        );
        let open = Defaults {
            policy: SpcPolicy::default(),
            ..guarded()
        };
        assert!(parse(&with(json!({ key: "/tmp/x" })), &open).is_ok());
    }
    let err = parse(&with(json!({"vaultSkipTLSVerify": "true"})), &defaults).unwrap_err();
    assert!(err.message.contains("vaultSkipTLSVerify"), "{err}");
    // Harmless: verification stays on, and the CA path is the provider's own.
    let cfg = parse(
        &with(json!({"vaultSkipTLSVerify": "false", "vaultCACertPath": "/etc/vault/ca.pem"})),
        &defaults,
    )
    .unwrap();
    assert!(!cfg.connection.tls.skip_verify);
    // A bad boolean is still a bad boolean, not a policy refusal.
    let err = parse(&with(json!({"vaultSkipTLSVerify": "maybe"})), &defaults).unwrap_err();
    assert!(err.message.contains("not a boolean"), "{err}");
}
