//! Secrets on disk and the admin API's transport, through real `slatefs serve` processes, the
//! real CLI and real TLS (certificates made here with rcgen): a local store private to its
//! user, token files others can read refused, TLS on TCP admin listeners (required off
//! loopback), and refused starts that leave the store untouched.

#[path = "support/csi.rs"]
mod csi;
#[path = "support/server.rs"]
mod server;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use server::{binary, free_port, Server, ServerOptions};
use slatefs::admin::tls::ClientTls;
use slatefs::admin::{client, proto, AdminAddr};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Every directory and file under `dir` with a group/other bit, with its mode.
fn open_to_others(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.mode() & 0o077 != 0 {
                out.push((p.clone(), meta.mode() & 0o7777));
            }
            if meta.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Runs `slatefs serve ARGS`, which must refuse to start: exits non-zero within 60 s (it is
/// killed, and the test fails, if it starts serving instead). Returns its stderr.
fn refused_start(args: &[&str]) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(binary())
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log.reopen().unwrap()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        let started = std::fs::read_to_string(log.path()).unwrap().contains("slatefs serving");
        if started || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("slatefs serve {args:?} did not refuse to start:\n{}", std::fs::read_to_string(log.path()).unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(log.path()).unwrap();
    assert!(!status.success(), "slatefs serve {args:?} exited 0:\n{stderr}");
    assert!(!stderr.contains("slatefs serving"), "{stderr}");
    stderr
}

/// `slatefs dataset ARGS`: (exit code, stdout, stderr).
fn dataset(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary()).arg("dataset").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_private(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    chmod(path, 0o600);
}

// ------------------------------------------------------------------------------ secrets on disk

#[test]
fn a_local_store_and_its_handle_key_are_private_to_their_user() {
    let store_dir = tempfile::tempdir().unwrap();
    // A world-traversable parent, as /srv or a home directory would be.
    chmod(store_dir.path(), 0o755);
    let data = store_dir.path().join("data");
    let mut server = Server::start_with(ServerOptions {
        store_url: Some(format!("file://{}", data.display())),
        ..Default::default()
    });
    let key = data.join("secrets/nfs-handle-key");
    assert_eq!(mode(&data), 0o700, "the store directory");
    assert_eq!(mode(&data.join("secrets")), 0o700, "the secrets directory");
    assert_eq!(mode(&key), 0o600, "the file-handle key");
    assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    assert!(data.join("catalog").is_dir());
    // Everything the store wrote (catalog, default dataset, manifests, WAL) is private too.
    assert_eq!(open_to_others(&data), vec![], "files or directories open to other users");
    let key_bytes = std::fs::read(&key).unwrap();

    // An older install: everything at the default modes. The next start tightens them, says
    // so, and keeps the key (handles stay valid).
    assert!(server.stop());
    chmod(&data, 0o755);
    chmod(&data.join("secrets"), 0o755);
    chmod(&key, 0o644);
    server.restart();
    assert_eq!((mode(&data), mode(&data.join("secrets")), mode(&key)), (0o700, 0o700, 0o600));
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes);
    let logs = server.logs();
    let log2 = logs.split("--- restart ---").nth(1).unwrap();
    assert!(
        log2.contains(&format!("secret {} was mode 0644", key.display())) && log2.contains("0600 now"),
        "{log2}"
    );
    assert!(log2.contains(&format!("the store directory {} was mode 0755", data.display())), "{log2}");
    assert!(server.stop());
}

#[test]
fn log_lines_carry_no_colour_codes_when_stderr_is_a_file() {
    let server = Server::start_with(ServerOptions { env: vec![], ..Default::default() });
    // The harness sends stderr to a file; NO_COLOR must not be what turns colour off.
    assert!(std::env::var_os("NO_COLOR").is_none(), "run this test without NO_COLOR");
    let logs = server.logs();
    assert!(logs.contains("slatefs serving"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "ESC in the log: {:?}", logs.lines().find(|l| l.contains('\u{1b}')));
    // The CLI's own errors too.
    let (code, _, stderr) = dataset(&["--admin", "unix:///nonexistent/admin.sock", "list"]);
    assert_eq!(code, 1);
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("admin-token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    chmod(&token, 0o644);
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, format!("[admin]\ntoken_file = \"{}\"\n", token.display())).unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let nfs = format!("127.0.0.1:{}", free_port());
    let admin = format!("tcp://127.0.0.1:{}", free_port());
    let cfg = config.to_str().unwrap();
    let url = format!("file://{}", store.display());

    let fix = format!("chmod 600 {}", token.display());
    let err = refused_start(&["--store", &url, "--nfs-listen", &nfs, "--admin-listen", &admin, "-c", cfg]);
    assert!(err.contains(&fix) && err.contains("mode 0644"), "{err}");
    assert_eq!(entries(&store), Vec::<String>::new(), "a refused start wrote to the store");
    // Group-readable is refused too (ssh's rule), and a store directory is not even created.
    chmod(&token, 0o640);
    let absent = tmp.path().join("never-created");
    let err = refused_start(&[
        "--store",
        &format!("file://{}", absent.display()),
        "--nfs-listen",
        &nfs,
        "--admin-listen",
        &admin,
        "-c",
        cfg,
    ]);
    assert!(err.contains(&fix) && err.contains("mode 0640"), "{err}");
    assert!(!absent.exists());

    // The CLI refuses to send it.
    let (code, _, stderr) = dataset(&["-c", cfg, "--admin", &admin, "list"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&fix), "{stderr}");

    // After the fix both use it.
    chmod(&token, 0o600);
    let server = Server::start_with(ServerOptions {
        store_url: Some(url.clone()),
        admin: Some(admin.clone()),
        config: Some(std::fs::read_to_string(&config).unwrap()),
        ..Default::default()
    });
    let (code, stdout, stderr) = dataset(&["-c", cfg, "--admin", &server.admin, "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("root"), "{stdout}");
}

#[test]
fn a_refused_start_leaves_the_store_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let token = tmp.path().join("token");
    write_private(&token, "t0ken");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = tmp.path().join("cert.pem");
    let key_pem = tmp.path().join("key.pem");
    let other_key = tmp.path().join("other-key.pem");
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    write_private(&key_pem, &cert.signing_key.serialize_pem());
    write_private(&other_key, &other.signing_key.serialize_pem());
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let url = format!("file://{}", store.display());
    let nfs = format!("127.0.0.1:{}", free_port());
    let port = free_port();

    let cases: Vec<(String, String, &str)> = vec![
        // (admin listen, [admin] section, what the error says)
        (format!("tcp://127.0.0.1:{port}"), String::new(), "without a token"),
        (format!("tcp://0.0.0.0:{port}"), format!("token_file = \"{}\"\n", token.display()), "without TLS"),
        (
            format!("tcp://0.0.0.0:{port}"),
            format!("token_file = \"{}\"\ntls_cert_file = \"{}\"\n", token.display(), cert_pem.display()),
            "tls_cert_file is set without tls_key_file",
        ),
        (
            format!("tcp://0.0.0.0:{port}"),
            format!(
                "token_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                token.display(),
                garbage.display(),
                key_pem.display()
            ),
            "holds no PEM certificate",
        ),
        (
            format!("tcp://0.0.0.0:{port}"),
            format!(
                "token_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                token.display(),
                cert_pem.display(),
                other_key.display()
            ),
            "does not go with the certificate",
        ),
        (
            format!("tcp://127.0.0.1:{port}"),
            format!("token_file = \"{}\"\n", tmp.path().join("missing-token").display()),
            "cannot read the admin token file",
        ),
    ];
    for (listen, admin_section, message) in cases {
        let config = tmp.path().join("config.toml");
        std::fs::write(&config, format!("[admin]\n{admin_section}")).unwrap();
        let err = refused_start(&[
            "--store",
            &url,
            "--nfs-listen",
            &nfs,
            "--admin-listen",
            &listen,
            "-c",
            config.to_str().unwrap(),
        ]);
        assert!(err.contains(message), "{listen} / {admin_section:?}: {message:?} not in\n{err}");
        assert_eq!(entries(&store), Vec::<String>::new(), "{listen} / {admin_section:?} wrote to the store");
    }
    // A bad key file's mode is refused like the token's.
    chmod(&key_pem, 0o644);
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\ntoken_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            token.display(),
            cert_pem.display(),
            key_pem.display()
        ),
    )
    .unwrap();
    let err = refused_start(&[
        "--store",
        &url,
        "--nfs-listen",
        &nfs,
        "--admin-listen",
        &format!("tcp://0.0.0.0:{port}"),
        "-c",
        config.to_str().unwrap(),
    ]);
    assert!(err.contains(&format!("chmod 600 {}", key_pem.display())), "{err}");
    assert_eq!(entries(&store), Vec::<String>::new());

    // So is a cluster secret file others can read, before the store is opened.
    let cluster_secret = tmp.path().join("cluster-secret");
    std::fs::write(&cluster_secret, "a cluster secret of some length\n").unwrap();
    chmod(&cluster_secret, 0o644);
    std::fs::write(
        &config,
        format!(
            "[cluster]\nlisten = \"127.0.0.1:{}\"\nsecret_file = \"{}\"\n",
            free_port(),
            cluster_secret.display()
        ),
    )
    .unwrap();
    let sock = format!("unix://{}", tmp.path().join("admin.sock").display());
    let err = refused_start(&["--store", &url, "--nfs-listen", &nfs, "--admin-listen", &sock, "-c", config.to_str().unwrap()]);
    assert!(err.contains(&format!("chmod 600 {}", cluster_secret.display())), "{err}");
    assert_eq!(entries(&store), Vec::<String>::new());
}

#[test]
fn a_second_server_on_a_live_admin_socket_is_refused_before_it_opens_the_catalog() {
    let server = Server::start();
    let other_store = tempfile::tempdir().unwrap();
    let err = refused_start(&[
        "--store",
        &format!("file://{}", other_store.path().display()),
        "--nfs-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--admin-listen",
        &server.admin,
    ]);
    assert!(err.contains("already listening on the admin socket"), "{err}");
    assert_eq!(entries(other_store.path()), Vec::<String>::new());
    // The first server still answers.
    let (code, stdout, stderr) = dataset(&["--admin", &server.admin, "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("root"));
}

// ------------------------------------------------------------------------------ TLS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_over_tcp_is_served_with_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_pem = tmp.path().join("cert.pem");
    let key_pem = tmp.path().join("key.pem");
    let stranger_pem = tmp.path().join("stranger.pem");
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    write_private(&key_pem, &cert.signing_key.serialize_pem());
    std::fs::write(&stranger_pem, stranger.cert.pem()).unwrap();
    let token = tmp.path().join("token");
    write_private(&token, "tls-t0ken");
    let port = free_port();
    let store_dir = tempfile::tempdir().unwrap();
    // A wildcard address: reachable from the network, so TLS is required.
    let server_config = format!(
        "[admin]\ntoken_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        token.display(),
        cert_pem.display(),
        key_pem.display()
    );
    let server = Server::start_with(ServerOptions {
        store_url: Some(format!("file://{}", store_dir.path().join("data").display())),
        admin: Some(format!("tcp://0.0.0.0:{port}")),
        config: Some(server_config.clone()),
        ..Default::default()
    });
    assert!(server.logs().contains("(TLS, certificate"), "{}", server.logs());
    let addr = format!("tcp://127.0.0.1:{port}");
    let write_config = |name: &str, body: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let client_cfg = write_config(
        "client.toml",
        format!("[admin]\ntoken_file = \"{}\"\ntls_ca_file = \"{}\"\n", token.display(), cert_pem.display()),
    );

    // The CLI, trusting the server's certificate.
    let (code, stdout, stderr) = dataset(&["-c", &client_cfg, "--admin", &addr, "create", "over-tls"]);
    assert_eq!(code, 0, "{stderr}\n{}", server.logs());
    assert!(stdout.contains("created dataset over-tls"), "{stdout}");
    let (code, stdout, stderr) = dataset(&["-c", &client_cfg, "--admin", &addr, "list", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mut names: Vec<&str> = v.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["over-tls", "root"]);
    // The server's own config works as the CLI's: it trusts the server's certificate.
    let own_cfg = write_config("own.toml", server_config.clone());
    let (code, _, stderr) = dataset(&["-c", &own_cfg, "--admin", &addr, "info", "over-tls"]);
    assert_eq!(code, 0, "{stderr}");

    // A plain-text client is refused, and told what may be missing.
    let plain_cfg = write_config("plain.toml", format!("[admin]\ntoken_file = \"{}\"\n", token.display()));
    let (code, stdout, stderr) = dataset(&["-c", &plain_cfg, "--admin", &addr, "list"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains("tls_ca_file"), "{stderr}");
    let a = AdminAddr::parse(&addr).unwrap();
    let served = match client::connect(&a, Some("tls-t0ken")).await {
        Err(_) => false,
        Ok(mut c) => c.list_datasets(proto::ListDatasetsRequest {}).await.is_ok(),
    };
    assert!(!served, "a plain-text HTTP/2 client was served");
    // A client that trusts another certificate refuses the server.
    let stranger_cfg = write_config(
        "stranger.toml",
        format!("[admin]\ntoken_file = \"{}\"\ntls_ca_file = \"{}\"\n", token.display(), stranger_pem.display()),
    );
    let (code, _, stderr) = dataset(&["-c", &stranger_cfg, "--admin", &addr, "list"]);
    assert_eq!(code, 1);
    assert!(stderr.to_lowercase().contains("certificate") || stderr.contains("cannot reach"), "{stderr}");

    // Over TLS the token is still required.
    let tls = ClientTls::load(&cert_pem).unwrap();
    for bad in [None, Some("wrong")] {
        let mut c = client::connect_with(&a, bad, Some(&tls)).await.unwrap();
        let st = c.list_datasets(proto::ListDatasetsRequest {}).await.unwrap_err();
        assert_eq!(st.code(), tonic::Code::Unauthenticated, "{bad:?}");
    }
    let mut c = client::connect_with(&a, Some("tls-t0ken"), Some(&tls)).await.unwrap();
    assert_eq!(c.list_datasets(proto::ListDatasetsRequest {}).await.unwrap().into_inner().datasets.len(), 2);

    // The CSI controller reaches it over TLS too: ready, and a volume is made through it.
    let more = format!("[admin]\ntoken_file = \"{}\"\ntls_ca_file = \"{}\"\n", token.display(), cert_pem.display());
    let plugin = csi::Plugin::start_configured(&server, "controller", &addr, &more, &[]);
    let out = plugin.call(&["probe"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["ready"], true, "{out:?}\n{}", plugin.logs());
    let out = plugin.call(&["create-volume", "pvc-tls", "--size", "1.5GiB"]);
    assert!(out.status.success(), "{out:?}\n{}", plugin.logs());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["volume"]["capacity_bytes"], 1536u64 << 20);
    let (code, stdout, _) = dataset(&["-c", &client_cfg, "--admin", &addr, "info", "pvc-tls", "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["quota_bytes"], 1536u64 << 20);
}
