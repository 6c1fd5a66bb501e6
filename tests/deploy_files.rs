//! The deployment files: the manifests in deploy/ validate against the
//! Kubernetes schemas, and the arguments that the DaemonSet and the
//! Dockerfile give the binary parse with the binary's own command-line parser.

mod common;

use std::path::Path;

use common::manifests::{assert_validated, no_env, read, root, serve, validate};
use serde_json::Value;
use vault_csi::k8s::HmacKeySource;

const SOCKET: &str = "/provider/vault.sock";
const PROVIDERS_DIR: &str = "/var/run/secrets-store-csi-providers";
const SOCKET_MOUNT: &str = "/provider";

fn daemonset() -> Value {
    serde_saphyr::from_str::<Value>(&read("deploy/daemonset.yaml"))
        .unwrap_or_else(|e| panic!("deploy/daemonset.yaml is not YAML: {e}"))
}

fn pod_spec(ds: &Value) -> &Value {
    &ds["spec"]["template"]["spec"]
}

/// The DaemonSet's one container.
fn container(ds: &Value) -> &Value {
    let containers = pod_spec(ds)["containers"]
        .as_array()
        .expect("the DaemonSet has a containers list");
    assert_eq!(containers.len(), 1, "one container expected");
    &containers[0]
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not a list: {value}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{what} holds a non-string: {v}"))
                .to_string()
        })
        .collect()
}

/// Finds the item of a list whose `key` is `value`.
fn item<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|i| i[key] == value))
        .unwrap_or_else(|| panic!("no item with {key} {value:?} in {list}"))
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let stdout = validate(&[]);
    // Every object was really checked, not just skipped over.
    for resource in [
        "namespace/vault-csi",
        "serviceaccount/vault-csi",
        "role/vault-csi",
        "rolebinding/vault-csi",
        "daemonset/vault-csi",
    ] {
        assert_validated(&stdout, resource);
    }
}

#[test]
fn daemonset_args_parse_with_the_binary_parser() {
    let ds = daemonset();
    let container = container(&ds);
    assert!(
        container.get("command").is_none(),
        "the image's ENTRYPOINT should run the binary; the manifest sets only args"
    );
    let args = strings(&container["args"], "args");

    let settings = serve(&args, &no_env);
    assert_eq!(settings.endpoint, Path::new(SOCKET));
    assert_eq!(settings.health_addr, ":8080");
    assert_eq!(settings.log.level, "info");
    assert_eq!(
        settings.hmac,
        HmacKeySource::Kubernetes {
            secret_name: "vault-csi-provider-hmac-key".into()
        }
    );

    // With the manifest's environment, its VAULT_ADDR is accepted and used.
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .expect("env is a list")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("env name").to_string();
            let value = e["value"].as_str().expect("env value").to_string();
            (name, value)
        })
        .collect();
    let lookup = |key: &str| {
        env.iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    };
    let vault_addr = lookup("VAULT_ADDR").expect("the DaemonSet sets VAULT_ADDR");
    let settings = serve(&args, &lookup);
    assert_eq!(settings.defaults.vault_address, vault_addr);

    // The probes reach the health endpoint the args configure.
    let port = item(&container["ports"], "name", "health");
    assert_eq!(port["containerPort"], 8080);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["path"], "/health/ready",
            "{probe}"
        );
        assert_eq!(container[probe]["httpGet"]["port"], "health", "{probe}");
    }
}

#[test]
fn daemonset_shares_the_drivers_provider_directory() {
    let ds = daemonset();
    let spec = pod_spec(&ds);
    let container = container(&ds);

    let volume = spec["volumes"]
        .as_array()
        .expect("the pod has volumes")
        .iter()
        .find(|v| v.get("hostPath").is_some())
        .expect("a hostPath volume");
    assert_eq!(volume["hostPath"]["path"], PROVIDERS_DIR);
    assert_eq!(volume["hostPath"]["type"], "DirectoryOrCreate");

    let name = volume["name"].as_str().expect("the volume has a name");
    let mount = item(&container["volumeMounts"], "name", name);
    assert_eq!(mount["mountPath"], SOCKET_MOUNT);

    // The socket is created inside that mount, under the driver's name for
    // `provider: vault`.
    let socket = Path::new(SOCKET);
    assert_eq!(socket.parent(), Some(Path::new(SOCKET_MOUNT)));
    assert_eq!(
        socket.file_name().and_then(|n| n.to_str()),
        Some("vault.sock")
    );
}

#[test]
fn daemonset_is_locked_down() {
    let ds = daemonset();
    let spec = pod_spec(&ds);
    let security = &container(&ds)["securityContext"];
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(spec["automountServiceAccountToken"], true);
    assert!(spec.get("priorityClassName").is_none());
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&security["capabilities"]["drop"], "drop"), ["ALL"]);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
}

#[test]
fn rbac_grants_only_the_hmac_key_secret() {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&read("deploy/rbac.yaml"))
        .unwrap_or_else(|e| panic!("deploy/rbac.yaml is not YAML: {e}"));
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Role", "RoleBinding"], "no cluster-wide roles");
    let rules = docs[0]["rules"].as_array().expect("the Role has rules");
    for rule in rules {
        assert_eq!(strings(&rule["resources"], "resources"), ["secrets"]);
        match strings(&rule["verbs"], "verbs").as_slice() {
            [verb] if verb == "get" => assert_eq!(
                strings(&rule["resourceNames"], "resourceNames"),
                ["vault-csi-provider-hmac-key"]
            ),
            [verb] if verb == "create" => {}
            other => panic!("unexpected verbs {other:?}"),
        }
    }
}

#[test]
fn self_minting_rbac_is_optional_and_minimal() {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&read("deploy/rbac-self-mint.yaml"))
        .unwrap_or_else(|e| panic!("deploy/rbac-self-mint.yaml is not YAML: {e}"));
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding"]);
    let rules = docs[0]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        strings(&rules[0]["resources"], "resources"),
        ["serviceaccounts/token"]
    );
    assert_eq!(strings(&rules[0]["verbs"], "verbs"), ["create"]);
    assert_eq!(docs[1]["subjects"][0]["name"], "vault-csi");
    // Not installed by default: tokenRequests makes it unnecessary.
    let kustomization: Value = serde_saphyr::from_str(&read("deploy/kustomization.yaml")).unwrap();
    let resources = strings(&kustomization["resources"], "resources");
    assert!(
        !resources.iter().any(|r| r == "rbac-self-mint.yaml"),
        "{resources:?}"
    );
}

/// The Dockerfile's instructions, comments dropped and continuation lines
/// joined.
fn dockerfile_instructions() -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current).trim().to_string());
            }
        }
    }
    instructions.retain(|i| !i.is_empty());
    instructions
}

/// The `name` of the `[[bin]]` target in Cargo.toml.
fn binary_name() -> String {
    let manifest = read("Cargo.toml");
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            return value.trim().trim_matches('"').to_string();
        }
    }
    panic!("no [[bin]] name in Cargo.toml");
}

/// The JSON array of an exec-form instruction such as `CMD [...]`.
fn exec_form(instructions: &[String], keyword: &str) -> Vec<String> {
    let found: Vec<&String> = instructions
        .iter()
        .filter(|i| i.starts_with(&format!("{keyword} ")))
        .collect();
    let [instruction] = found.as_slice() else {
        panic!("expected one {keyword} in the Dockerfile, found {found:?}");
    };
    let json = instruction[keyword.len()..].trim();
    serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("{keyword} is not a JSON (exec form) array: {json}: {e}"))
}

#[test]
fn dockerfile_builds_and_runs_the_binary() {
    let bin = binary_name();
    assert_eq!(bin, "vault-csi");
    let instructions = dockerfile_instructions();

    let build = instructions
        .iter()
        .find(|i| i.starts_with("RUN ") && i.contains("cargo build"))
        .expect("a RUN cargo build");
    for flag in ["--locked", "--release", &format!("--bin {bin}")] {
        assert!(build.contains(flag), "the build lacks {flag}: {build}");
    }

    // The runtime stage copies the release binary under both names.
    let copies: Vec<(String, String)> = instructions
        .iter()
        .filter(|i| i.starts_with("COPY --from="))
        .map(|i| {
            let words: Vec<&str> = i.split_whitespace().collect();
            let [_, _, source, destination] = words.as_slice() else {
                panic!("unexpected COPY form: {i}");
            };
            (source.to_string(), destination.to_string())
        })
        .collect();
    let release = format!("target/release/{bin}");
    for destination in [format!("/bin/{bin}"), "/bin/vault-csi-provider".to_string()] {
        let (source, _) = copies
            .iter()
            .find(|(_, d)| *d == destination)
            .unwrap_or_else(|| panic!("nothing is copied to {destination}: {copies:?}"));
        assert!(
            source.ends_with(&release),
            "{destination} comes from {source}, not {release}"
        );
    }

    assert_eq!(
        exec_form(&instructions, "ENTRYPOINT"),
        [format!("/bin/{bin}")]
    );
    let cmd = exec_form(&instructions, "CMD");
    let settings = serve(&cmd, &no_env);
    assert_eq!(settings.endpoint, Path::new(SOCKET));
}

/// The sources of the builder stage's `COPY` instructions (from the build
/// context, not from another stage).
fn context_copies() -> Vec<String> {
    let mut sources = Vec::new();
    for instruction in dockerfile_instructions() {
        let Some(rest) = instruction.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from=") {
            continue;
        }
        let mut words: Vec<&str> = rest.split_whitespace().collect();
        words.pop(); // the destination
        sources.extend(words.iter().map(|w| w.trim_end_matches('/').to_string()));
    }
    sources
}

#[test]
fn dockerignore_lets_the_build_inputs_through() {
    let ignore = read(".dockerignore");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|p| p.trim_end_matches('/'))
        .collect();
    let sources = context_copies();
    assert!(!sources.is_empty(), "the Dockerfile copies nothing");
    for source in &sources {
        assert!(
            allowed.contains(&source.as_str()),
            "COPY {source} is excluded by .dockerignore (allowed: {allowed:?})"
        );
        assert!(root().join(source).exists(), "COPY {source}: no such file");
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn files_compiled_into_the_binary_are_copied_into_the_image() {
    // include_str!/include_bytes! reach outside src/ (the demo embeds
    // examples/); the image build fails unless those files are copied too.
    let sources = context_copies();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for macro_call in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_call) {
                let literal = &text[at + macro_call.len()..];
                let literal = &literal[..literal.find('"').expect("a closing quote")];
                let mut resolved = std::path::PathBuf::new();
                for part in file.parent().expect("a parent").join(literal).components() {
                    match part {
                        std::path::Component::ParentDir => {
                            resolved.pop();
                        }
                        std::path::Component::CurDir => {}
                        other => resolved.push(other),
                    }
                }
                let relative = resolved.strip_prefix(root()).unwrap_or_else(|_| {
                    panic!("{literal} in {} is outside the crate", file.display())
                });
                let top = relative
                    .components()
                    .next()
                    .and_then(|c| c.as_os_str().to_str())
                    .expect("a relative path");
                assert!(
                    sources.iter().any(|s| s == top),
                    "{} embeds {}, but the Dockerfile copies only {sources:?}",
                    file.display(),
                    relative.display()
                );
            }
        }
    }
}
