//! The examples in examples/: each example's SecretProviderClass, read from
//! its file, is mounted through the real provider against real OpenBao (and
//! PostgreSQL for the database example), after the Vault side its README
//! describes: the example's own `policy.hcl`, a Kubernetes auth role named
//! like the SPC's `roleName`, bound to the service account and namespace of
//! the example's Pod or Deployment with `audience=vault`, and the secrets.
//!
//! What the test substitutes, and nothing else: the Vault address.  The
//! provider's default address (`VAULT_ADDR`, the chart's `vaultAddress`) is
//! the test's OpenBao; an SPC that names a `vaultAddress` of its own
//! (migrate-from-hashicorp) gets the test's OpenBao instead; in vault-agent
//! the Agent's socket path is the test's OpenBao Proxy socket.  Parameters,
//! objects, role names and policies are the files' own.
//!
//! Then every `secretObjects[].data[].objectName` must be a file the
//! provider returned (the driver's sync fails otherwise), and the files must
//! hold what the README promises.  The examples' built-in kinds (Pods,
//! Deployments, ServiceAccounts, ConfigMaps) are validated against the
//! Kubernetes schemas; SecretProviderClass is a CRD the validator has no
//! schema for, so its shape is checked here.
//!
//! Limits: the Vault Agent itself is played by `bao proxy` with the test's
//! configuration (src/demo/proxy.rs), not with agent-config.yaml, whose
//! listener and stanzas are checked only as text; the database connection is
//! the shared helper's (`database/config/pg`), which the SPC never names.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use common::manifests::{assert_validated, read, root, validate};
use common::postgres::{self, database_engine};
use common::requests::file;
use common::{Env, MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::{Value, json};
use vault_csi::proto::MountResponse;

/// The example directories, each with a README.md.
const EXAMPLES: &[&str] = &[
    "kv-v2",
    "kv-v1",
    "database",
    "pki-tls",
    "sync-envfrom",
    "vault-agent",
    "migrate-from-hashicorp",
];

/// One `secretObjects` entry of a SecretProviderClass.
struct SecretObject {
    /// `secretName`.
    secret_name: String,
    /// `type`.
    kind: String,
    /// `(objectName, key)` of each `data` entry.
    data: Vec<(String, String)>,
}

/// One example directory's Kubernetes documents.
struct Example {
    /// The directory under examples/.
    dir: &'static str,
    /// Every document of its manifests, with the file it came from.
    docs: Vec<(String, Value)>,
}

impl Example {
    /// Reads every YAML manifest of `examples/<dir>` (not `values.yaml`,
    /// which holds Helm values).
    fn load(dir: &'static str) -> Example {
        let mut names: Vec<String> = std::fs::read_dir(root().join("examples").join(dir))
            .unwrap_or_else(|e| panic!("examples/{dir}: {e}"))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "values.yaml")
            .collect();
        names.sort();
        let mut docs = Vec::new();
        for name in names {
            let path = format!("examples/{dir}/{name}");
            let parsed: Vec<Value> = serde_saphyr::from_multiple(&read(&path))
                .unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
            docs.extend(parsed.into_iter().map(|d| (path.clone(), d)));
        }
        Example { dir, docs }
    }

    /// The example's one SecretProviderClass, its shape checked.
    fn spc(&self) -> &Value {
        let spcs: Vec<&Value> = self
            .docs
            .iter()
            .map(|(_, d)| d)
            .filter(|d| d["kind"] == "SecretProviderClass")
            .collect();
        let [spc] = spcs.as_slice() else {
            panic!(
                "examples/{} has {} SecretProviderClasses",
                self.dir,
                spcs.len()
            );
        };
        assert_eq!(spc["apiVersion"], "secrets-store.csi.x-k8s.io/v1");
        assert_eq!(spc["spec"]["provider"], "vault", "{}", self.dir);
        for field in ["name", "namespace"] {
            assert!(spc["metadata"][field].is_string(), "{}: {field}", self.dir);
        }
        spc
    }

    fn name(&self) -> &str {
        self.spc()["metadata"]["name"].as_str().unwrap()
    }

    /// The SPC's parameters; every value must be a string (the CRD's
    /// `map[string]string`).
    fn parameters(&self) -> BTreeMap<String, String> {
        let params = self.spc()["spec"]["parameters"]
            .as_object()
            .expect("parameters");
        params
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: parameter {k} is not a string", self.dir));
                (k.clone(), v.to_string())
            })
            .collect()
    }

    fn role(&self) -> String {
        self.parameters()["roleName"].clone()
    }

    /// The pod spec of the Pod or Deployment that mounts the SPC, with its
    /// namespace.
    fn workload(&self) -> (String, &Value) {
        let spc_name = self.name();
        let found: Vec<(String, &Value)> = self
            .docs
            .iter()
            .filter_map(|(_, d)| {
                let spec = match d["kind"].as_str()? {
                    "Pod" => &d["spec"],
                    "Deployment" => &d["spec"]["template"]["spec"],
                    _ => return None,
                };
                let mounts_spc = spec["volumes"].as_array()?.iter().any(|v| {
                    v["csi"]["driver"] == "secrets-store.csi.k8s.io"
                        && v["csi"]["volumeAttributes"]["secretProviderClass"] == spc_name
                });
                let namespace = d["metadata"]["namespace"].as_str()?.to_string();
                mounts_spc.then_some((namespace, spec))
            })
            .collect();
        let [(namespace, spec)] = found.as_slice() else {
            panic!(
                "examples/{}: {} workloads mount {spc_name}",
                self.dir,
                found.len()
            );
        };
        assert_eq!(
            namespace,
            &self.spc()["metadata"]["namespace"],
            "{}: the SPC must be in the pod's namespace",
            self.dir
        );
        (namespace.clone(), spec)
    }

    /// A pod of the workload: its namespace and service account.
    fn pod(&self) -> TestPod {
        let (namespace, spec) = self.workload();
        let sa = spec["serviceAccountName"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: the pod names no serviceAccountName", self.dir));
        assert!(
            self.docs
                .iter()
                .any(|(_, d)| d["kind"] == "ServiceAccount" && d["metadata"]["name"] == sa),
            "{}: no ServiceAccount {sa}",
            self.dir
        );
        TestPod::new(&namespace, sa)
    }

    /// The secretObjects entries, their required fields checked.
    fn secret_objects(&self) -> Vec<SecretObject> {
        let Some(list) = self.spc()["spec"]["secretObjects"].as_array() else {
            return Vec::new();
        };
        list.iter()
            .map(|s| {
                let text = |v: &Value, what: &str| {
                    let t = v.as_str().unwrap_or_default().trim().to_string();
                    assert!(!t.is_empty(), "{}: secretObjects {what} is empty", self.dir);
                    t
                };
                let data: Vec<(String, String)> = s["data"]
                    .as_array()
                    .expect("secretObjects data")
                    .iter()
                    .map(|d| (text(&d["objectName"], "objectName"), text(&d["key"], "key")))
                    .collect();
                assert!(!data.is_empty(), "{}: secretObjects without data", self.dir);
                SecretObject {
                    secret_name: text(&s["secretName"], "secretName"),
                    kind: text(&s["type"], "type"),
                    data,
                }
            })
            .collect()
    }

    /// The README's Vault side: the example's policy under the role's name,
    /// and the role.
    async fn vault_side(&self, env: &Env) {
        let role = self.role();
        let pod = self.pod();
        let policy = read(&format!("examples/{}/policy.hcl", self.dir));
        env.bao.write_policy(&role, &policy).await.expect("policy");
        env.api(
            Method::POST,
            &format!("auth/kubernetes/role/{role}"),
            Some(json!({
                "bound_service_account_names": [pod.service_account],
                "bound_service_account_namespaces": [pod.namespace],
                "audience": "vault",
                "token_policies": [role],
                "token_ttl": "20m",
            })),
        )
        .await;
    }

    /// The driver's request for a new pod of the workload; the SPC's own
    /// `vaultAddress`, if any, is replaced by `vault_addr`.
    fn request(&self, vault_addr: &str) -> (TestPod, MountBuilder) {
        let mut parameters = self.parameters();
        if let Some(address) = parameters.get_mut("vaultAddress") {
            *address = vault_addr.to_string();
        }
        let pod = self.pod();
        let request = MountBuilder::from_parameters(self.name(), &parameters).pod(
            &pod,
            &common::env_now().signer,
            "vault",
        );
        (pod, request)
    }

    /// Mounts through `provider` and checks the secretObjects against the
    /// files returned.
    async fn mount(&self, provider: &Provider) -> MountResponse {
        let (_, request) = self.request(common::bao_addr());
        let response = provider
            .mount(request.build())
            .await
            .unwrap_or_else(|e| panic!("examples/{}: {e}", self.dir));
        self.check_secret_objects(&response);
        response
    }

    /// Every `secretObjects[].data[].objectName` names a returned file.
    fn check_secret_objects(&self, response: &MountResponse) {
        let files: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
        for SecretObject {
            secret_name: secret,
            kind,
            data,
        } in self.secret_objects()
        {
            for (object, key) in data {
                assert!(
                    files.contains(&object.as_str()),
                    "examples/{}: Secret {secret} key {key} wants objectName {object}, but the \
                     provider returned only {files:?}",
                    self.dir
                );
                if kind == "kubernetes.io/tls" {
                    assert!(["tls.crt", "tls.key"].contains(&key.as_str()), "{key}");
                }
            }
        }
    }
}

/// A provider whose default Vault address is the test's OpenBao.
async fn provider() -> Provider {
    Provider::start_with_env(&[], &[("VAULT_ADDR", common::bao_addr())]).await
}

fn mode(response: &MountResponse, path: &str) -> i32 {
    response
        .files
        .iter()
        .find(|f| f.path == path)
        .expect("the file")
        .mode
}

#[test]
fn kv_v2() {
    run(async {
        let env = env().await;
        let example = Example::load("kv-v2");
        example.vault_side(env).await;
        env.kv2_put(
            "webapp/config",
            json!({"username": "webapp", "password": "kv2-password"}),
        )
        .await;
        let response = example.mount(&provider().await).await;
        assert_eq!(file(&response, "username"), "webapp");
        assert_eq!(file(&response, "password"), "kv2-password");
        assert_eq!(mode(&response, "password"), 0o400);
        let whole: Value = serde_json::from_str(file(&response, "config.json")).unwrap();
        assert_eq!(whole["data"]["data"]["username"], "webapp");
    });
}

#[test]
fn kv_v1() {
    run(async {
        let env = env().await;
        let example = Example::load("kv-v1");
        example.vault_side(env).await;
        env.api(
            Method::POST,
            "sys/mounts/kv",
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
        let keystore = [0u8, 1, 2, 250, 251, 252];
        env.api(
            Method::POST,
            "kv/legacy/api",
            Some(json!({
                "token": "kv1-token",
                "keystore": base64::engine::general_purpose::STANDARD.encode(keystore),
            })),
        )
        .await;
        let response = example.mount(&provider().await).await;
        assert_eq!(file(&response, "api-token"), "kv1-token");
        let bytes = &response
            .files
            .iter()
            .find(|f| f.path == "keystore.p12")
            .expect("keystore.p12")
            .contents;
        assert_eq!(bytes.as_slice(), keystore);
        assert_eq!(mode(&response, "keystore.p12"), 0o400);
    });
}

#[test]
fn database() {
    run(async {
        let env = env().await;
        let example = Example::load("database");
        example.vault_side(env).await;
        let pg = postgres::start().await;
        database_engine(&pg, "database", &[("orders-app", "1h", "24h")]).await;
        let provider = provider().await;
        // Two replicas of the Deployment: one identity, one credential.
        let first = example.mount(&provider).await;
        let second = example.mount(&provider).await;
        let (user, password) = (file(&first, "db-username"), file(&first, "db-password"));
        assert_eq!(file(&second, "db-username"), user);
        pg.try_query_as(user, password, "SELECT 1")
            .unwrap_or_else(|e| panic!("the mounted credential does not log in: {e}"));
        assert_eq!(mode(&first, "db-password"), 0o400);
    });
}

/// The one PEM block of `text`, checked for `tag`.
fn pem_block(text: &str, tags: &[&str]) -> pem::Pem {
    let blocks = pem::parse_many(text).unwrap_or_else(|e| panic!("not PEM: {e}"));
    let [block] = blocks.as_slice() else {
        panic!("{} PEM blocks", blocks.len());
    };
    assert!(tags.contains(&block.tag()), "PEM tag {}", block.tag());
    block.clone()
}

#[test]
fn pki_tls() {
    run(async {
        let env = env().await;
        let example = Example::load("pki-tls");
        example.vault_side(env).await;
        env.api(Method::POST, "sys/mounts/pki", Some(json!({"type": "pki"})))
            .await;
        env.api(
            Method::POST,
            "sys/mounts/pki/tune",
            Some(json!({"max_lease_ttl": "87600h"})),
        )
        .await;
        env.api(
            Method::POST,
            "pki/root/generate/internal",
            Some(json!({"common_name": "example.com", "ttl": "87600h"})),
        )
        .await;
        env.api(
            Method::POST,
            "pki/roles/example-dot-com",
            Some(json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h"})),
        )
        .await;
        let response = example.mount(&provider().await).await;
        let cert = pem_block(file(&response, "tls.crt"), &["CERTIFICATE"]);
        let needle = b"shop.example.com";
        assert!(
            cert.contents().windows(needle.len()).any(|w| w == needle),
            "the certificate is not for shop.example.com"
        );
        pem_block(
            file(&response, "tls.key"),
            &["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"],
        );
        assert_eq!(mode(&response, "tls.key"), 0o400);
        let ca = pem_block(file(&response, "ca.crt"), &["CERTIFICATE"]);
        assert_ne!(ca.contents(), cert.contents());
        let tls: Vec<_> = example
            .secret_objects()
            .into_iter()
            .filter(|s| s.kind == "kubernetes.io/tls")
            .collect();
        assert_eq!(tls.len(), 1, "one kubernetes.io/tls Secret");
    });
}

#[test]
fn sync_envfrom() {
    run(async {
        let env = env().await;
        let example = Example::load("sync-envfrom");
        example.vault_side(env).await;
        env.kv2_put(
            "payments/db",
            json!({"username": "payments", "password": "sync-password"}),
        )
        .await;
        let response = example.mount(&provider().await).await;
        let objects = example.secret_objects();
        let [object] = objects.as_slice() else {
            panic!("one synced Secret expected");
        };
        assert_eq!(object.kind, "Opaque");
        let synced: BTreeMap<&str, &str> = object
            .data
            .iter()
            .map(|(object, key)| (key.as_str(), file(&response, object)))
            .collect();
        assert_eq!(synced["DB_USERNAME"], "payments");
        assert_eq!(synced["DB_PASSWORD"], "sync-password");
        // The Deployment reads that Secret with envFrom and mounts the
        // volume (without which the driver never creates the Secret).
        let (_, spec) = example.workload();
        let container = &spec["containers"][0];
        assert_eq!(
            container["envFrom"][0]["secretRef"]["name"],
            object.secret_name.as_str()
        );
        assert!(container["volumeMounts"][0]["mountPath"].is_string());
    });
}

#[test]
fn vault_agent() {
    run(async {
        let env = env().await;
        let example = Example::load("vault-agent");
        example.vault_side(env).await;
        env.kv2_put("inventory/api", json!({"key": "via-agent"}))
            .await;
        assert!(
            !example.parameters().contains_key("vaultAddress"),
            "the SPC must leave the address to the provider (the Agent)"
        );

        // The chart values: the provider's address is the Agent's socket,
        // in a volume both containers mount; every key is the chart's.
        let values: Value =
            serde_saphyr::from_str(&read("examples/vault-agent/values.yaml")).expect("values.yaml");
        let chart: Value =
            serde_saphyr::from_str(&read("deploy/helm/vault-csi-provider/values.yaml")).unwrap();
        for key in values.as_object().expect("a map").keys() {
            assert!(chart.get(key).is_some(), "the chart has no value {key}");
        }
        let address = values["vaultAddress"].as_str().expect("vaultAddress");
        let socket = address.strip_prefix("unix://").expect("a unix:// address");
        let socket_dir = std::path::Path::new(socket).parent().unwrap();
        assert_eq!(
            values["extraVolumeMounts"][0]["mountPath"],
            socket_dir.to_str().unwrap()
        );
        let agent = &values["extraContainers"][0];
        assert!(
            agent["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == socket_dir.to_str().unwrap()),
            "the Agent does not mount the socket directory"
        );
        let config = read("examples/vault-agent/agent-config.yaml");
        for needed in [
            format!("address                = \"{socket}\""),
            "require_request_header = true".into(),
            "use_auto_auth_token = false".into(),
            "cache {}".into(),
        ] {
            assert!(config.contains(&needed), "agent.hcl lacks {needed}");
        }
        assert!(
            !config.contains("auto_auth {"),
            "the Agent must not log in itself"
        );

        // The Agent (played by bao proxy with the same listener settings)
        // on a unix socket; the provider's VAULT_ADDR points at it.
        let proxy = vault_csi::demo::proxy::BaoProxy::start(env.bao.addr(), true)
            .await
            .expect("bao proxy");
        let agent_addr = format!("unix://{}", proxy.socket().display());
        let provider = Provider::start_with_env(&[], &[("VAULT_ADDR", &agent_addr)]).await;
        let response = example.mount(&provider).await;
        assert_eq!(file(&response, "api-key"), "via-agent");
        assert!(
            proxy.log().contains("forwarding request"),
            "the mount did not go through the Agent:\n{}",
            proxy.log()
        );
    });
}

#[test]
fn migrate_from_hashicorp() {
    run(async {
        let env = env().await;
        let example = Example::load("migrate-from-hashicorp");
        example.vault_side(env).await;
        env.kv2_put("billing/db", json!({"password": "billing-password"}))
            .await;
        assert!(
            example
                .parameters()
                .contains_key("vaultKubernetesMountPath")
        );
        // The SPC's own vaultAddress is the one thing replaced; the
        // provider has no default address at all.
        let provider = Provider::start(&[]).await;
        let response = example.mount(&provider).await;
        assert_eq!(file(&response, "db-password"), "billing-password");
        let whole: Value = serde_json::from_str(file(&response, "db.json")).unwrap();
        assert_eq!(whole["data"]["data"]["password"], "billing-password");
    });
}

#[test]
fn every_example_is_indexed_and_documented() {
    let index = read("examples/README.md");
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|d| d != "templates") // another branch's, with its own checks
        .collect();
    dirs.sort();
    let mut expected: Vec<String> = EXAMPLES.iter().map(|d| d.to_string()).collect();
    expected.sort();
    assert_eq!(dirs, expected, "every example directory is tested here");
    for dir in EXAMPLES {
        assert!(
            index.contains(&format!("]({dir}/)")),
            "examples/README.md lacks {dir}"
        );
        let readme = read(&format!("examples/{dir}/README.md"));
        let example = Example::load(dir);
        // The README's Vault commands name the example's role and policy.
        let role = example.role();
        for fragment in [
            format!("auth/kubernetes/role/{role}"),
            format!("vault policy write {role}"),
            "audience=vault".to_string(),
        ] {
            assert!(
                readme.contains(&fragment),
                "examples/{dir}/README.md lacks {fragment}"
            );
        }
    }
}

#[test]
fn example_manifests_validate_against_the_kubernetes_schemas() {
    let temp = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut resources = Vec::new();
    for dir in EXAMPLES {
        let example = Example::load(dir);
        example.spc();
        example.secret_objects();
        example.pod();
        // One file per example of its built-in kinds, as JSON documents
        // (a YAML stream).
        let mut text = String::new();
        for (_, doc) in &example.docs {
            if doc["kind"] == "SecretProviderClass" {
                continue;
            }
            text.push_str("---\n");
            text.push_str(&doc.to_string());
            text.push('\n');
            resources.push(format!(
                "{}/{}",
                doc["kind"].as_str().unwrap().to_lowercase(),
                doc["metadata"]["name"].as_str().unwrap()
            ));
        }
        let path = temp.path().join(format!("{dir}.yaml"));
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let stdout = validate(&files);
    for resource in &resources {
        assert_validated(&stdout, resource);
    }
    assert!(resources.len() >= 2 * EXAMPLES.len());
}
