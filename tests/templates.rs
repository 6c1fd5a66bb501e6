//! Templates and `secretKey: "*"` against a real OpenBao (and, for the
//! example's `pgpass`, a real PostgreSQL): the example SecretProviderClass
//! in `examples/templates/` mounted as written, KV v1 and v2, other objects,
//! built-in names that keys cannot shadow, errors that name the key and
//! never a value, limits, and versions that change exactly with content.

mod common;

use std::time::Duration;

use common::postgres::{self, database_engine};
use common::requests::{file, version};
use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;
use vault_csi::proto::MountResponse;

const CANARY: &str = "canary-tpl-4e1d";

/// A role `role` for SA `app` in namespace `ns`, allowed `paths`.
async fn role(role: &str, ns: &str, paths: &[(&str, &str)]) -> &'static common::Env {
    let env = env().await;
    env.k8s_role(role, "app", ns, paths, Duration::from_secs(600))
        .await;
    env
}

/// A mount request for a new pod of SA `app` in `ns`.
fn request(env: &common::Env, ns: &str, role: &str, objects: &str) -> MountBuilder {
    let pod = TestPod::new(ns, "app");
    MountBuilder::new(env.bao.addr(), role, objects).pod(&pod, &env.signer, "vault")
}

/// The mode of file `path` in a response.
fn mode(response: &MountResponse, path: &str) -> i32 {
    response
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path}"))
        .mode
}

/// The files' paths, sorted.
fn paths(response: &MountResponse) -> Vec<&str> {
    let mut paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    paths
}

/// `examples/templates/secretproviderclass.yaml`: its `roleName` and `objects`.
fn example() -> (String, String) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/templates/secretproviderclass.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read the example");
    let spc: Value = serde_saphyr::from_str(&text).expect("the example is YAML");
    let parameters = &spc["spec"]["parameters"];
    (
        parameters["roleName"]
            .as_str()
            .expect("roleName")
            .to_string(),
        parameters["objects"].as_str().expect("objects").to_string(),
    )
}

#[test]
fn the_example_mounts_env_pgpass_json_and_every_key() {
    run(async {
        let env = env().await;
        let pg = postgres::start().await;
        database_engine(&pg, "database", &[("shop", "1h", "2h")]).await;
        env.kv2_put(
            "shop/config",
            json!({
                "db_host": "127.0.0.1",
                "db_port": pg.port(),
                "db_name": "postgres",
                "api-key": format!("{CANARY}-api\"quoted\""),
                "features": ["search", "cart"],
            }),
        )
        .await;
        let (role_name, objects) = example();
        let env = role(
            &role_name,
            "shop",
            &[
                ("secret/data/shop/*", "\"read\""),
                ("database/creds/shop", "\"read\""),
            ],
        )
        .await;
        // With the response cache on (tests turn it off unless asked).
        let provider = Provider::start(&["--cache-ttl=30s"]).await;
        let pod = request(env, "shop", &role_name, &objects);
        let response = provider
            .mount(pod.build())
            .await
            .expect("the example mounts");

        assert_eq!(
            file(&response, "app.env"),
            format!(
                "DB_HOST=127.0.0.1\nDB_PORT={}\nDB_NAME=postgres\nAPI_KEY={CANARY}-api\"quoted\"\nLOG_LEVEL=info\n",
                pg.port()
            )
        );
        assert_eq!(mode(&response, "app.env"), 0o600);

        // pgpass: the host from KV, the credential from the database engine,
        // and the credential logs in.
        let pgpass = file(&response, "pgpass");
        assert_eq!(pgpass.lines().count(), 1, "{pgpass:?}");
        let fields: Vec<&str> = pgpass.trim_end().splitn(5, ':').collect();
        assert_eq!(
            fields[..3],
            ["127.0.0.1", pg.port().to_string().as_str(), "postgres"]
        );
        assert!(
            fields[3].starts_with("v-"),
            "a database-engine user: {pgpass}"
        );
        let password = fields[4].replace("\\:", ":").replace("\\\\", "\\");
        assert_eq!(
            pg.try_query_as(fields[3], &password, "SELECT current_user")
                .expect("the pgpass credential logs in"),
            fields[3]
        );
        assert_eq!(mode(&response, "pgpass"), 0o600);

        let config: Value =
            serde_json::from_str(file(&response, "config.json")).expect("config.json is JSON");
        assert_eq!(
            config,
            json!({
                "database": {"host": "127.0.0.1", "port": pg.port()},
                "api_key": format!("{CANARY}-api\"quoted\""),
                "features": ["search", "cart"],
            })
        );

        assert_eq!(file(&response, "settings/db_name"), "postgres");
        assert_eq!(
            file(&response, "settings/api-key"),
            format!("{CANARY}-api\"quoted\"")
        );
        assert_eq!(file(&response, "settings/features"), r#"["search","cart"]"#);
        let ids: Vec<&str> = response
            .object_version
            .iter()
            .map(|v| v.id.as_str())
            .collect();
        for id in [
            "app.env",
            "pgpass",
            "config.json",
            "settings",
            "settings/db_host",
            "settings/api-key",
        ] {
            assert!(ids.contains(&id), "version for {id} in {ids:?}");
        }

        // Templates render from fetched responses, so the caches still work:
        // the pod's next mount reads the KV secret from the response cache
        // and reuses the database credential.
        let reads = env.audit_requests("secret/data/shop/config");
        let again = provider.mount(pod.build()).await.unwrap();
        assert_eq!(env.audit_requests("secret/data/shop/config"), reads);
        assert_eq!(file(&again, "pgpass"), pgpass);
        assert_eq!(again.object_version, response.object_version);
    });
}

#[test]
fn kv1_template_combines_another_objects_keys() {
    run(async {
        let env = env().await;
        env.api(
            Method::POST,
            "sys/mounts/tpl-kv1",
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
        env.api(
            Method::POST,
            "tpl-kv1/db",
            Some(json!({"host": "db.internal", "port": "6432"})),
        )
        .await;
        env.kv2_put(
            "tpl-kv1/creds",
            json!({"username": "app", "password": "pw"}),
        )
        .await;
        let env = role(
            "tpl-kv1",
            "tpl-kv1",
            &[
                ("tpl-kv1/*", "\"read\""),
                ("secret/data/tpl-kv1/*", "\"read\""),
            ],
        )
        .await;
        let provider = Provider::start(&[]).await;
        let objects = r#"
- objectName: pgpass
  secretPath: tpl-kv1/db
  template: "{{ host }}:{{ port }}:app:{{ objects['db/creds'].username }}:{{ objects['db/creds'].password }}"
- objectName: db/creds
  secretPath: secret/data/tpl-kv1/creds
  secretKey: username
"#;
        let response = provider
            .mount(request(env, "tpl-kv1", "tpl-kv1", objects).build())
            .await
            .unwrap();
        assert_eq!(file(&response, "pgpass"), "db.internal:6432:app:app:pw");
        assert_eq!(file(&response, "db/creds"), "app");
    });
}

#[test]
fn keys_named_like_builtins_do_not_shadow_them() {
    run(async {
        let env = env().await;
        env.kv2_put(
            "tpl-shadow/app",
            json!({
                "secret": "key-secret",
                "objects": "key-objects",
                "data": "key-data",
                "db-password": "dash",
                "user": "u",
            }),
        )
        .await;
        let env = role(
            "tpl-shadow",
            "tpl-shadow",
            &[("secret/data/tpl-shadow/*", "\"read\"")],
        )
        .await;
        let provider = Provider::start(&[]).await;
        let objects = r#"
- objectName: out
  secretPath: secret/data/tpl-shadow/app
  template: |
    {{ data["secret"] }} {{ data["objects"] }} {{ data["data"] }} {{ data["db-password"] }}
    {{ secret.data.metadata.version }} {{ objects.out.user }} {{ data.user }} {{ user }}
"#;
        let response = provider
            .mount(request(env, "tpl-shadow", "tpl-shadow", objects).build())
            .await
            .unwrap();
        assert_eq!(
            file(&response, "out"),
            "key-secret key-objects key-data dash\n1 u u u\n"
        );
    });
}

#[test]
fn template_errors_name_object_line_and_key_but_no_value() {
    run(async {
        let env = env().await;
        env.kv2_put(
            "tpl-errors/app",
            json!({"password": CANARY, "big": "x".repeat(100_000)}),
        )
        .await;
        let env = role(
            "tpl-errors",
            "tpl-errors",
            &[("secret/data/tpl-errors/*", "\"read\"")],
        )
        .await;
        let provider = Provider::start(&["--log-level=trace"]).await;
        let tpl = |template: &str| {
            let objects = format!(
                "- objectName: app.env\n  secretPath: secret/data/tpl-errors/app\n  template: {}\n",
                serde_json::to_string(template).unwrap()
            );
            request(env, "tpl-errors", "tpl-errors", &objects)
        };
        let expect = async |builder: MountBuilder, code: Code, fragments: &[&str]| {
            let message = common::provider::expect_error(&provider, builder, code, fragments).await;
            assert!(!message.contains(CANARY), "a secret value in: {message}");
        };

        // A missing key: the object, the line and the key are named, the
        // keys that exist are listed, the value is not.
        expect(
            tpl("USER=app\nPASSWORD={{ pasword }}\n"),
            Code::InvalidArgument,
            &[
                "object \"app.env\"",
                "line 2",
                "key \"pasword\"",
                "big, password",
            ],
        )
        .await;
        expect(
            tpl("{{ objects.db.password }}"),
            Code::InvalidArgument,
            &["object \"db\"", "objectNames there: app.env"],
        )
        .await;
        // Errors whose engine message could quote the value do not.
        expect(
            tpl("{{ password | int }}"),
            Code::InvalidArgument,
            &["line 1"],
        )
        .await;
        expect(
            tpl("{{ password | b64decode }}"),
            Code::InvalidArgument,
            &["base64"],
        )
        .await;
        // Limits.
        expect(
            tpl("{% for i in range(20) %}{{ big }}{% endfor %}"),
            Code::ResourceExhausted,
            &["more than 1048576 bytes"],
        )
        .await;
        expect(
            tpl("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"),
            Code::ResourceExhausted,
            &["more work than a template may"],
        )
        .await;

        // A syntax error is found when the SecretProviderClass is parsed,
        // before anything is sent to Vault.
        let reads = env.audit_requests("secret/data/tpl-errors/app");
        expect(
            tpl("A={{ password }}\nB={{ password \n"),
            Code::InvalidArgument,
            &["object \"app.env\"", "syntax error on line"],
        )
        .await;
        assert_eq!(env.audit_requests("secret/data/tpl-errors/app"), reads);

        let logs = provider.logs();
        assert!(logs.contains("mount"), "the provider logged mounts: {logs}");
        assert!(
            !logs.contains(CANARY),
            "a secret value reached the log:\n{logs}"
        );
    });
}

#[test]
fn every_key_writes_a_file_per_key_and_rejects_unsafe_or_colliding_keys() {
    run(async {
        let env = env().await;
        env.kv2_put(
            "tpl-star/app",
            json!({"user": "u", "pass": "p", "port": 5432}),
        )
        .await;
        env.kv2_put("tpl-star/empty", json!({})).await;
        let env = role(
            "tpl-star",
            "tpl-star",
            &[("secret/data/tpl-star/*", "\"read\"")],
        )
        .await;
        let provider = Provider::start(&[]).await;
        let objects = r#"
- objectName: app
  secretPath: secret/data/tpl-star/app
  secretKey: "*"
  filePermission: 0640
- objectName: none
  secretPath: secret/data/tpl-star/empty
  secretKey: "*"
"#;
        let response = provider
            .mount(request(env, "tpl-star", "tpl-star", objects).build())
            .await
            .unwrap();
        assert_eq!(paths(&response), ["app/pass", "app/port", "app/user"]);
        assert_eq!(file(&response, "app/user"), "u");
        assert_eq!(file(&response, "app/port"), "5432");
        assert_eq!(mode(&response, "app/pass"), 0o640);
        let mut ids: Vec<&str> = response
            .object_version
            .iter()
            .map(|v| v.id.as_str())
            .collect();
        ids.sort_unstable();
        // The empty secret writes no file but still reports its version.
        assert_eq!(ids, ["app", "app/pass", "app/port", "app/user", "none"]);
        assert_ne!(
            version(&response, "app/user"),
            version(&response, "app/pass")
        );

        for (n, key) in ["../x", "a/b", "..hidden"].into_iter().enumerate() {
            let path = format!("tpl-star/unsafe{n}");
            env.kv2_put(&path, json!({"ok": "v", key: CANARY})).await;
            let objects = format!(
                "- objectName: all\n  secretPath: secret/data/{path}\n  secretKey: \"*\"\n"
            );
            let message = common::provider::expect_error(
                &provider,
                request(env, "tpl-star", "tpl-star", &objects),
                Code::InvalidArgument,
                &[
                    "object \"all\"",
                    &format!("key {key:?} cannot be a file name"),
                ],
            )
            .await;
            assert!(!message.contains(CANARY), "{message}");
        }

        let colliding = r#"
- objectName: app
  secretPath: secret/data/tpl-star/app
  secretKey: "*"
- objectName: app/user
  secretPath: secret/data/tpl-star/app
  secretKey: pass
"#;
        common::provider::expect_error(
            &provider,
            request(env, "tpl-star", "tpl-star", colliding),
            Code::InvalidArgument,
            &["key \"user\"", "\"app/user\""],
        )
        .await;
    });
}

#[test]
fn versions_change_exactly_when_rendered_content_changes() {
    run(async {
        let env = env().await;
        let path = "tpl-versions/app";
        env.kv2_put(path, json!({"user": "u1", "pass": "p1", "unused": "x1"}))
            .await;
        let env = role(
            "tpl-versions",
            "tpl-versions",
            &[("secret/data/tpl-versions/*", "\"read\"")],
        )
        .await;
        // No response cache, so every mount sees Vault's current data.
        let provider = Provider::start(&["--cache-ttl=0"]).await;
        let objects = r#"
- objectName: app.env
  secretPath: secret/data/tpl-versions/app
  template: "USER={{ user }}\nPASS={{ pass }}\n"
- objectName: all
  secretPath: secret/data/tpl-versions/app
  secretKey: "*"
"#;
        let mount = async || {
            provider
                .mount(request(env, "tpl-versions", "tpl-versions", objects).build())
                .await
                .unwrap()
        };
        let first = mount().await;
        let same = mount().await;
        assert_eq!(first.object_version, same.object_version, "nothing changed");

        // A key the template does not use: the template's file and version
        // stay; the `*` object gains nothing new but its changed key file
        // and its own version change.
        env.kv2_put(path, json!({"user": "u1", "pass": "p1", "unused": "x2"}))
            .await;
        let unused = mount().await;
        assert_eq!(file(&unused, "app.env"), file(&first, "app.env"));
        assert_eq!(version(&unused, "app.env"), version(&first, "app.env"));
        assert_ne!(
            version(&unused, "all/unused"),
            version(&first, "all/unused")
        );
        assert_eq!(version(&unused, "all/user"), version(&first, "all/user"));
        assert_ne!(version(&unused, "all"), version(&first, "all"));

        // A key the template uses: its version changes.
        env.kv2_put(path, json!({"user": "u2", "pass": "p1", "unused": "x2"}))
            .await;
        let used = mount().await;
        assert_eq!(file(&used, "app.env"), "USER=u2\nPASS=p1\n");
        assert_ne!(version(&used, "app.env"), version(&unused, "app.env"));
        assert_ne!(version(&used, "all/user"), version(&unused, "all/user"));
        assert_eq!(version(&used, "all/pass"), version(&unused, "all/pass"));

        // A removed key: the `*` object's own version changes.
        env.kv2_put(path, json!({"user": "u2", "pass": "p1"})).await;
        let removed = mount().await;
        assert!(!removed.files.iter().any(|f| f.path == "all/unused"));
        assert_ne!(version(&removed, "all"), version(&used, "all"));
        assert_eq!(version(&removed, "app.env"), version(&used, "app.env"));
    });
}
