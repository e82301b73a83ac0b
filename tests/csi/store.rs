//! Store credentials from CSI secrets, and the volume condition of a fenced dataset (part of
//! the `csi` test binary: it uses its helpers).

use std::collections::HashMap;

use slatefs::csi::proto::*;
use tonic::Code;

use super::csi::Plugin;
use super::server::{self, Server};
use super::{cap, code, cs, cv, nfs, read_file, s3, secrets, write_file, MIB};

// ------------------------------------------------------------------------------- Secrets

/// Object-store credentials come from CSI secrets. Malformed secrets are refused before
/// anything is made; on S3 the store itself judges them (the catalog owner, and for
/// NodePublish the node's dataset server, run the store's start-up checks with them); a local
/// store takes none. No secret value reaches an error message or a log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_credentials_come_from_csi_secrets() {
    const WRONG: &str = "wrong-secret-never-logged-0123456789";
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();
    let mut n = plugin.node();
    let on_s3 = server.store_url.starts_with("s3://");
    let kv = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let with = |name: &str, secrets: HashMap<String, String>| CreateVolumeRequest { secrets, ..cv(name, MIB, 0) };
    let get = |v: &str| ControllerGetVolumeRequest { volume_id: v.into() };
    let wrong = kv(&[("accessKeyId", s3::DEFAULT_ACCESS_KEY), ("secretAccessKey", WRONG)]);

    for bad in [
        kv(&[("accessKeyId", "a"), ("secretAccessKey", WRONG), ("region", "x")]),
        kv(&[("accessKeyId", "a")]),
        kv(&[("secretAccessKey", WRONG)]),
        kv(&[("accessKeyId", "a"), ("secretAccessKey", " ")]),
        kv(&[("accessKeyId", "a"), ("secretAccessKey", WRONG), ("AWS_SECRET_ACCESS_KEY", "other")]),
    ] {
        let e = c.create_volume(with("pvc-sec", bad.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
        assert!(!e.message().contains(WRONG), "{e:?}");
    }
    assert_eq!(code(c.controller_get_volume(get("pvc-sec")).await), Code::NotFound);

    let target = plugin.path().join("pods/sec/mount").display().to_string();
    let publish = |secrets: HashMap<String, String>| NodePublishVolumeRequest {
        volume_id: "pvc-sec".into(),
        target_path: target.clone(),
        volume_capability: Some(cap()),
        secrets,
        ..Default::default()
    };

    if !on_s3 {
        // A local directory takes no credentials: a secret for it is a mistake, and said so.
        let e = c.create_volume(with("pvc-sec", wrong.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("takes no credentials"), "{e:?}");
        assert_eq!(code(c.controller_get_volume(get("pvc-sec")).await), Code::NotFound);
        c.create_volume(with("pvc-sec", HashMap::new())).await.unwrap();
        let e = n.node_publish_volume(publish(wrong.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    } else {
        // The store rejects the wrong key: PERMISSION_DENIED, and nothing is made.
        let e = c.create_volume(with("pvc-sec", wrong.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("rejected the credentials"), "{e:?}");
        assert!(!e.message().contains(WRONG), "{e:?}");
        assert_eq!(code(c.controller_get_volume(get("pvc-sec")).await), Code::NotFound);

        // The right keys, naming the store explicitly, in either spelling.
        let mut r = with("pvc-sec", secrets());
        r.parameters.insert("storeUrl".into(), server.store_url.clone());
        c.create_volume(r).await.unwrap();
        let aws = kv(&[("AWS_ACCESS_KEY_ID", s3::DEFAULT_ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", s3::DEFAULT_SECRET_KEY)]);
        c.create_volume(with("pvc-sec-aws", aws)).await.unwrap();
        write_file(server.nfs_port, "pvc-sec", "f", b"kept").await;

        // Every other controller call with the wrong key is refused and changes nothing.
        let e = c.delete_volume(DeleteVolumeRequest { volume_id: "pvc-sec".into(), secrets: wrong.clone() }).await;
        assert_eq!(code(e), Code::PermissionDenied);
        let e = c.create_snapshot(CreateSnapshotRequest { secrets: wrong.clone(), ..cs("snap-sec", "pvc-sec") }).await;
        assert_eq!(code(e), Code::PermissionDenied);
        let expand = ControllerExpandVolumeRequest {
            volume_id: "pvc-sec".into(),
            capacity_range: Some(CapacityRange { required_bytes: 2 * MIB, limit_bytes: 0 }),
            secrets: wrong.clone(),
            ..Default::default()
        };
        assert_eq!(code(c.controller_expand_volume(expand.clone()).await), Code::PermissionDenied);
        let v = c.controller_get_volume(get("pvc-sec")).await.unwrap().into_inner().volume.unwrap();
        assert_eq!(v.capacity_bytes, MIB);
        let s = c.create_snapshot(cs("snap-sec", "pvc-sec")).await.unwrap().into_inner().snapshot.unwrap();
        let e = c.delete_snapshot(DeleteSnapshotRequest { snapshot_id: s.snapshot_id.clone(), secrets: wrong.clone() }).await;
        assert_eq!(code(e), Code::PermissionDenied);
        c.get_snapshot(GetSnapshotRequest { snapshot_id: s.snapshot_id.clone(), secrets: secrets() }).await.unwrap();
        // The node's dataset server judges a publish's secret before anything is mounted.
        let e = n.node_publish_volume(publish(wrong.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(!std::path::Path::new(&target).exists(), "a refused publish made {target}");

        // With the right key they all work.
        c.controller_expand_volume(ControllerExpandVolumeRequest { secrets: secrets(), ..expand }).await.unwrap();
        c.delete_snapshot(DeleteSnapshotRequest { snapshot_id: s.snapshot_id, secrets: secrets() }).await.unwrap();
        assert_eq!(read_file(server.nfs_port, "pvc-sec", "f").await, b"kept");
        c.delete_volume(DeleteVolumeRequest { volume_id: "pvc-sec".into(), secrets: secrets() }).await.unwrap();
        assert_eq!(code(c.controller_get_volume(get("pvc-sec")).await), Code::NotFound);
    }

    // `slatefs csi call` sends a secrets file; the exit status is the gRPC code.
    let file = plugin.path().join("wrong.env");
    std::fs::write(&file, format!("# a class secret\naccessKeyId={}\nsecretAccessKey={WRONG}\n", s3::DEFAULT_ACCESS_KEY)).unwrap();
    let out = plugin.call(&["create-volume", "pvc-cli", "--size", "1Mi", "--secrets-file", file.to_str().unwrap()]);
    let want = if on_s3 { Code::PermissionDenied } else { Code::InvalidArgument };
    assert_eq!(out.status.code(), Some(want as i32), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(WRONG), "{out:?}");
    assert_eq!(code(c.controller_get_volume(get("pvc-cli")).await), Code::NotFound);
    if on_s3 {
        let good = plugin.path().join("good.env");
        let body: String = secrets().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&good, body).unwrap();
        let out = plugin.call(&["create-volume", "pvc-cli", "--size", "1Mi", "--secrets-file", good.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        let out = plugin.call(&["delete-volume", "--volume-id", "pvc-cli", "--secrets-file", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(Code::PermissionDenied as i32), "{out:?}");
        c.controller_get_volume(get("pvc-cli")).await.unwrap();
    }

    for (who, logs) in [("slatefs csi", plugin.logs()), ("slatefs serve", server.logs())] {
        assert!(!logs.contains(WRONG), "{who} logged a secret:\n{logs}");
        assert!(!logs.contains(s3::DEFAULT_SECRET_KEY), "{who} logged a secret:\n{logs}");
    }
}

// ------------------------------------------------------------------------------- Condition

/// Two `slatefs serve` processes on one store: when the second opens a dataset for writing,
/// SlateDB fences the first, and the volume condition the first reports turns abnormal
/// (ControllerGetVolume through the CSI socket; DatasetStats, what NodeGetVolumeStats reports
/// from, through the admin API). Asking does not take the dataset back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_dataset_reports_an_abnormal_condition() {
    use slatefs::csi::backend::{Backend, Health};
    let a = Server::start();
    let plugin = Plugin::start(&a);
    let mut c = plugin.controller();
    let get = || ControllerGetVolumeRequest { volume_id: "pvc-fence".into() };
    c.create_volume(cv("pvc-fence", 8 * MIB, 0)).await.unwrap();
    write_file(a.nfs_port, "pvc-fence", "from-a", b"A was here").await;
    let status = c.controller_get_volume(get()).await.unwrap().into_inner().status.unwrap();
    let cond = status.volume_condition.unwrap();
    assert!(!cond.abnormal, "{cond:?}");

    // B follows A's catalog and takes the dataset's writer by writing to it.
    let b = Server::start_with(server::ServerOptions {
        store_url: Some(a.store_url.clone()),
        config: Some("[catalog]\nrole = \"reader\"\n".into()),
        ..Default::default()
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut cb = loop {
        match nfs::Client::mount(b.nfs_port, "/pvc-fence").await {
            Ok(cl) => break cl,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Err(e) => panic!("B never served pvc-fence: {e:?}\n{}", b.logs()),
        }
    };
    let root = cb.root.clone();
    let f = cb.create(&root, b"from-b", 0o644).await.unwrap();
    cb.write(&f, 0, b"B took over").await.unwrap();

    // A learns of the takeover when it reads the dataset's manifest: the report reads it, and
    // SlateDB polls it every second, so the report may lag the takeover by a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let cond = loop {
        let status = c.controller_get_volume(get()).await.unwrap().into_inner().status.unwrap();
        let cond = status.volume_condition.unwrap();
        if cond.abnormal || std::time::Instant::now() > deadline {
            break cond;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(cond.abnormal, "A's condition 15 s after B took over: {cond:?}");
    assert!(cond.message.contains("fenced"), "{cond:?}");

    let admin = slatefs::admin::AdminAddr::parse(&a.admin).unwrap();
    let backend = slatefs::csi::admin_backend::AdminBackend::new(&admin, None).unwrap();
    let stats = backend.dataset_stats("pvc-fence").await.unwrap();
    assert_eq!(stats.health, Some(Health::Fenced));
    assert!(stats.health.unwrap().problem().unwrap().contains("fenced"));

    // Neither report moved the writer: B still writes, and A still reports the fence.
    cb.write(&f, 11, b", and keeps writing").await.unwrap();
    assert_eq!(cb.read_all(&f).await.unwrap(), b"B took over, and keeps writing");
    let cond = c.controller_get_volume(get()).await.unwrap().into_inner().status.unwrap().volume_condition.unwrap();
    assert!(cond.abnormal, "{cond:?}");

    // A snapshot is an explicit request: A (the owner) takes the writer back for it, fencing B.
    // B is a catalog reader, like a node's server: asked for stats, it takes its dataset back
    // as serving would, and reports it healthy rather than leaving an idle volume "fenced".
    let snap = c.create_snapshot(cs("snap-fence", "pvc-fence")).await.unwrap().into_inner().snapshot.unwrap();
    assert!(snap.ready_to_use);
    let b_admin = slatefs::admin::AdminAddr::parse(&b.admin).unwrap();
    let b_backend = slatefs::csi::admin_backend::AdminBackend::new(&b_admin, None).unwrap();
    assert_eq!(b_backend.dataset_stats("pvc-fence").await.unwrap().health, Some(Health::Ok));
    cb.write(&f, 0, b"b").await.unwrap();
    assert!(b.logs().contains("opening it again"), "B took its writer back:\n{}", b.logs());
}
