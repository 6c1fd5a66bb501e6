use std::collections::HashMap;

use super::*;

fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, clap::Error> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut all = vec!["vault-csi"];
    all.extend_from_slice(args);
    parse_command(all, &move |k| env.get(k).cloned())
}

fn serve(args: &[&str], env: &[(&str, &str)]) -> ServeSettings {
    match parse(args, env).unwrap() {
        Command::Serve(s) => *s,
        other => panic!("expected serve, got {other:?}"),
    }
}

#[test]
fn accepts_hashicorps_manifest_args() {
    // deployment/vault-csi-provider.yaml of HashiCorp's provider.
    let s = serve(&["-endpoint=/provider/vault.sock", "-log-level=info"], &[]);
    assert_eq!(s.endpoint, std::path::PathBuf::from("/provider/vault.sock"));
    assert_eq!(s.log.level, "info");
    assert_eq!(s.health_addr, ":8080");
    assert_eq!(s.cache_size, 1000);
    assert_eq!(s.cache_ttl, std::time::Duration::from_secs(30));
    assert_eq!(s.max_cache_ttl, std::time::Duration::from_secs(300));
    assert_eq!(s.cache_scope, crate::mount::CacheScope::Identity);
    assert_eq!(s.defaults.vault_address, "https://127.0.0.1:8200");
    assert_eq!(
        s.hmac,
        HmacKeySource::Kubernetes {
            secret_name: "vault-csi-provider-hmac-key".into()
        }
    );
}

#[test]
fn accepts_vault_helm_daemonset_args() {
    // vault-helm's csi-daemonset.yaml (older charts pass --debug=false).
    let s = serve(
        &[
            "--endpoint=/provider/vault.sock",
            "--debug=false",
            "--log-level=debug",
            "--hmac-secret-name=vault-csi-provider-hmac-key",
            "-vault-addr=https://vault.vault.svc:8200",
            "-vault-mount",
            "k8s",
            "-vault-tls-skip-verify",
            "-cache-size=0",
            "-health-addr=127.0.0.1:9090",
        ],
        &[("VAULT_ADDR", "unix:///var/run/vault/agent.sock")],
    );
    assert_eq!(s.log.level, "debug");
    assert_eq!(s.defaults.vault_address, "https://vault.vault.svc:8200");
    assert_eq!(s.defaults.auth_mount.as_deref(), Some("k8s"));
    assert!(s.defaults.tls.skip_verify);
    assert_eq!(s.cache_size, 0);
    assert_eq!(s.health_addr, "127.0.0.1:9090");
}

#[test]
fn every_hashicorp_flag_is_accepted() {
    let s = serve(
        &[
            "-endpoint",
            "/p.sock",
            "-health-addr=:1",
            "-vault-addr=http://a:1",
            "-vault-mount=m",
            "-vault-namespace=ns",
            "-vault-tls-ca-cert=/ca",
            "-vault-tls-ca-directory=/cadir",
            "-vault-tls-server-name=vault.internal",
            "-vault-tls-client-cert=/c",
            "-vault-tls-client-key=/k",
            "-vault-tls-skip-verify=false",
            "-log-level=warn",
            "-debug",
            "-cache-size=5",
            "-hmac-secret-name=h",
            "-output=yaml",
            "-write-secrets=false",
        ],
        &[],
    );
    assert_eq!(s.log.level, "debug", "-debug raises the level");
    assert_eq!(
        s.defaults.tls.server_name.as_deref(),
        Some("vault.internal")
    );
    assert!(!s.warnings.iter().any(|w| w.contains("server-name")));
    assert!(s.warnings.iter().any(|w| w.contains("write-secrets")));
    assert!(matches!(parse(&["-version"], &[]).unwrap(), Command::PrintVersion(f) if f == "json"));
    assert!(
        matches!(parse(&["--version", "--output=yaml"], &[]).unwrap(), Command::PrintVersion(f) if f == "yaml")
    );
}

#[test]
fn environment_is_below_flags() {
    let env = [
        ("VAULT_ADDR", "http://env:8200"),
        ("BAO_ADDR", "http://bao:8200"),
        ("BAO_NAMESPACE", "bao-ns"),
        ("VAULT_CACERT", "/env/ca.pem"),
        ("VAULT_SKIP_VERIFY", "1"),
        ("VAULT_CLIENT_TIMEOUT", "1m30s"),
        ("VAULT_MAX_RETRIES", "0"),
    ];
    let s = serve(&[], &env);
    assert_eq!(s.defaults.vault_address, "http://env:8200");
    assert_eq!(s.defaults.vault_namespace.as_deref(), Some("bao-ns"));
    assert_eq!(s.defaults.tls.ca_cert.as_deref(), Some("/env/ca.pem"));
    assert!(s.defaults.tls.skip_verify);
    assert_eq!(s.client.request_timeout, std::time::Duration::from_secs(90));
    assert_eq!(s.client.max_retries, 0);

    let s = serve(
        &[
            "-vault-addr=http://flag:8200",
            "-vault-tls-ca-cert=/flag/ca.pem",
            "-vault-tls-skip-verify=false",
        ],
        &env,
    );
    assert_eq!(s.defaults.vault_address, "http://flag:8200");
    assert_eq!(s.defaults.tls.ca_cert.as_deref(), Some("/flag/ca.pem"));
    assert!(!s.defaults.tls.skip_verify);

    let s = serve(&[], &[("BAO_ADDR", "http://bao:8200")]);
    assert_eq!(s.defaults.vault_address, "http://bao:8200");
}

#[test]
fn rejects_bad_values_clearly() {
    for (args, env, expected) in [
        (vec!["-log-level=loud"], vec![], "--log-level"),
        (vec!["-vault-addr=vault:8200"], vec![], "--vault-addr"),
        (vec!["-debug=maybe"], vec![], "not a boolean"),
        (
            vec![],
            vec![("VAULT_SKIP_VERIFY", "yes")],
            "VAULT_SKIP_VERIFY",
        ),
        (
            vec![],
            vec![("VAULT_CLIENT_TIMEOUT", "soon")],
            "VAULT_CLIENT_TIMEOUT",
        ),
        (vec!["--log-format=xml"], vec![], "--log-format"),
        (vec!["--cache-scope=cluster"], vec![], "--cache-scope"),
        (vec!["--cache-ttl=soon"], vec![], "--cache-ttl"),
    ] {
        let err = parse(&args, &env).unwrap_err().to_string();
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn durations_accept_bare_seconds_and_units() {
    assert_eq!(parse_duration("30").unwrap().as_secs(), 30);
    assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
    assert_eq!(parse_duration("1m30s").unwrap().as_secs(), 90);
    assert!(parse_duration("-1").is_err());
}

#[test]
fn redirect_hosts_and_the_response_limit() {
    let s = serve(&[], &[]);
    assert_eq!(s.client.max_response_bytes, 4 * 1024 * 1024);
    assert_eq!(
        s.client.redirect_hosts,
        crate::vault::RedirectHosts::default()
    );
    let s = serve(
        &[
            "-vault-redirect-hosts=vault-0.vault:8200,vault-1.vault",
            "-max-response-bytes=8388608",
        ],
        &[],
    );
    assert_eq!(s.client.max_response_bytes, 8 * 1024 * 1024);
    assert_eq!(
        s.client.redirect_hosts,
        crate::vault::RedirectHosts::parse("vault-0.vault:8200,vault-1.vault").unwrap()
    );
    for bad in [
        "--vault-redirect-hosts=https://vault:8200",
        "--max-response-bytes=0",
        "--max-response-bytes=4MiB",
    ] {
        assert!(parse(&[bad], &[]).is_err(), "{bad}");
    }
}

#[test]
fn guardrail_and_limit_flags_parse_like_the_helm_chart_renders_them() {
    let s = serve(&[], &[]);
    assert_eq!(s.defaults.policy, crate::spc::SpcPolicy::default());
    assert_eq!(s.client.max_concurrent_requests, 32);

    let s = serve(
        &[
            "-vault-addr=https://vault.vault.svc:8200",
            "--allowed-vault-addresses=https://vault.example.com:8200,*.vault.svc",
            "--allow-spc-tls-overrides=false",
            "-vault-max-concurrent-requests=8",
        ],
        &[],
    );
    let allowed = s.defaults.policy.allowed_addresses.expect("a list");
    assert_eq!(
        allowed.to_string(),
        "https://vault.vault.svc:8200, https://vault.example.com:8200, *.vault.svc"
    );
    let addr = |a: &str| crate::spc::VaultAddress::parse(a).unwrap();
    assert!(allowed.allows(&addr("http://x.vault.svc:8200")));
    assert!(!allowed.allows(&addr("https://evil.example:8200")));
    assert!(!s.defaults.policy.allow_tls_overrides);
    assert_eq!(s.client.max_concurrent_requests, 8);

    // Go syntax: a bare boolean flag is true; an empty list allows anything.
    let s = serve(
        &["-allow-spc-tls-overrides", "--allowed-vault-addresses="],
        &[],
    );
    assert!(s.defaults.policy.allow_tls_overrides);
    assert_eq!(s.defaults.policy.allowed_addresses, None);
    assert_eq!(
        serve(&["--vault-max-concurrent-requests=0"], &[])
            .client
            .max_concurrent_requests,
        0
    );

    let err = parse(&["--allowed-vault-addresses=vault:8200"], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"vault:8200\""), "{err}");
    let err = parse(&["--allow-spc-tls-overrides=maybe"], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a boolean"), "{err}");
}
