//! The web console's JSON API over real HTTP against a real `slatefs serve` with `[web]` set:
//! authentication (bearer, login cookie, read-only token), CSRF, path tricks sent as raw
//! bytes, browsing live datasets and snapshots, tar streams, diff, restore read back over NFS,
//! and refused starts. The browser test (tests/web/browser.py) is driven from `web_browser`.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;
#[path = "web/console.rs"]
mod console;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use console::{Auth, Console};
use nfs::{pattern, Client};
use serde_json::{json, Value};
use server::binary;

fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| v["path"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_cookie_readonly_and_csrf() {
    let c = Console::start();
    let bearer = Auth::Bearer(&c.token);

    // No token, a wrong token, an unknown session: 401, with a message.
    let r = c.call("GET", "/api/v1/datasets", None, Auth::None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("authentication required"));
    assert_eq!(c.call("GET", "/api/v1/datasets", None, Auth::Bearer("nope")).await.status, 401);
    let forged = Auth::Cookie { session: "0123", csrf: None };
    assert_eq!(c.call("GET", "/api/v1/datasets", None, forged).await.status, 401);
    let r = c.call("POST", "/api/v1/login", Some(json!({ "token": "nope" })), Auth::None).await;
    assert_eq!(r.status, 401);
    assert!(r.headers.get("set-cookie").is_none());

    // The bearer token sees the default dataset with its usage and health.
    let r = c.call("GET", "/api/v1/datasets", None, bearer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let root = r.json()["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "root").cloned().unwrap();
    assert_eq!(root["is_default"], true);
    assert_eq!(root["health"]["state"], "ok");
    assert!(root["used_inodes"].as_u64().unwrap() >= 1);

    // Logging in sets an HttpOnly, SameSite=Strict cookie and returns the CSRF token.
    let (session, csrf) = c.login(&c.token).await;
    let cookie_get = Auth::Cookie { session: &session, csrf: None };
    assert_eq!(c.call("GET", "/api/v1/datasets", None, cookie_get).await.status, 200);
    let again = c.call("GET", "/api/v1/session", None, cookie_get).await.json();
    assert_eq!((again["csrf_token"].as_str(), again["access"].as_str()), (Some(csrf.as_str()), Some("admin")));

    // A state-changing request by cookie needs the session's own CSRF token.
    let take = |name: &str| json!({ "name": name });
    let r = c.call("POST", "/api/v1/datasets/root/snapshots", Some(take("s-nocsrf")), cookie_get).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("CSRF"));
    let (_other_session, other_csrf) = c.login(&c.token).await;
    let wrong = Auth::Cookie { session: &session, csrf: Some(&other_csrf) };
    assert_eq!(c.call("POST", "/api/v1/datasets/root/snapshots", Some(take("s-wrong")), wrong).await.status, 403);
    assert!(c.snapshot_names("root").await.is_empty(), "a refused request changed nothing");
    let right = Auth::Cookie { session: &session, csrf: Some(&csrf) };
    let r = c.call("POST", "/api/v1/datasets/root/snapshots", Some(take("s-cookie")), right).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Bearer requests need no CSRF token.
    assert_eq!(c.call("POST", "/api/v1/datasets/root/snapshots", Some(take("s-bearer")), bearer).await.status, 201);
    assert_eq!(c.snapshot_names("root").await, vec!["s-cookie", "s-bearer"]);

    // The read-only token looks but does not touch, by bearer and by session.
    let ro = Auth::Bearer(&c.ro_token);
    assert_eq!(c.call("GET", "/api/v1/datasets/root/snapshots", None, ro).await.status, 200);
    let r = c.call("DELETE", "/api/v1/datasets/root/snapshots/s-cookie", None, ro).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let (ro_session, ro_csrf) = c.login(&c.ro_token).await;
    let ro_cookie = Auth::Cookie { session: &ro_session, csrf: Some(&ro_csrf) };
    assert_eq!(c.call("POST", "/api/v1/datasets/root/snapshots", Some(take("s-ro")), ro_cookie).await.status, 403);
    assert_eq!(c.snapshot_names("root").await, vec!["s-cookie", "s-bearer"]);

    // Logging out ends the session.
    assert_eq!(c.call("POST", "/api/v1/logout", None, right).await.status, 204);
    assert_eq!(c.call("GET", "/api/v1/datasets", None, cookie_get).await.status, 401);
    assert_eq!(c.call("GET", "/api/v1/datasets", None, ro_cookie).await.status, 200, "other sessions go on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_never_leave_the_dataset() {
    let c = Console::start();
    let mut nfs = Client::mount(c.server.nfs_port, "/").await.unwrap();
    let d = nfs.mkdir(&nfs.root.clone(), b"dir", 0o755).await.unwrap();
    let f = nfs.create(&d, b"inside.txt", 0o644).await.unwrap();
    nfs.write(&f, 0, b"inside").await.unwrap();
    let plain = c.bearer("GET", "/api/v1/datasets/root/files/dir/inside.txt", None).await;
    assert_eq!(plain.body, b"inside");

    for path in [
        "/api/v1/datasets/root/files/dir/../dir/inside.txt",
        "/api/v1/datasets/root/files/..",
        "/api/v1/datasets/root/files/dir/%2e%2e/dir/inside.txt",
        "/api/v1/datasets/root/files/dir%2Finside.txt",
        "/api/v1/datasets/root/files/dir/inside.txt%00",
        "/api/v1/datasets/root/files/dir//inside.txt",
        "/api/v1/datasets/root/files/./dir",
        "/api/v1/datasets/root/files/dir/%zz",
        "/api/v1/datasets/..%2Fx/files/",
    ] {
        let (status, body) = c.raw_get(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("\"error\""), "{path}: {body}");
    }
    // Names the catalog does not know, and a snapshot that is not this dataset's.
    assert_eq!(c.raw_get("/api/v1/datasets/Bad%20Name/files/").0, 400);
    assert_eq!(c.raw_get("/api/v1/datasets/nosuch/files/").0, 404);
    assert_eq!(c.raw_get("/api/v1/datasets/root@nosuch/files/").0, 404);
    // A restore path in a JSON body gets the same rules.
    c.bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "p1" }))).await;
    for bad in ["/dir/../dir/inside.txt", "dir/inside.txt\u{0}", "/"] {
        let r = c.bearer("POST", "/api/v1/datasets/root/restore", Some(json!({ "snapshot": "p1", "path": bad }))).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_download_and_tar() {
    let c = Console::start();
    let mut nfs = Client::mount(c.server.nfs_port, "/").await.unwrap();
    let root = nfs.root.clone();
    let docs = nfs.mkdir(&root, b"docs", 0o750).await.unwrap();
    let sub = nfs.mkdir(&docs, b"sub dir", 0o755).await.unwrap();
    let note = nfs.create(&docs, b"note.txt", 0o640).await.unwrap();
    nfs.write(&note, 0, b"version one\n").await.unwrap();
    let big = pattern(7, 3 << 20);
    let blob = nfs.create(&sub, b"blob.bin", 0o600).await.unwrap();
    for (i, piece) in big.chunks(1 << 20).enumerate() {
        nfs.write(&blob, (i as u64) << 20, piece).await.unwrap();
    }
    nfs.symlink(&docs, b"link", b"note.txt").await.unwrap();
    c.bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "b1" }))).await;
    nfs.write(&note, 0, b"version two, longer\n").await.unwrap();

    let list = c.bearer("GET", "/api/v1/datasets/root/files/docs", None).await.json();
    let entries = list["entries"].as_array().unwrap();
    let by_name = |n: &str| entries.iter().find(|e| e["name"] == n).unwrap().clone();
    assert_eq!(entries.len(), 3, "{list}");
    assert_eq!((by_name("note.txt")["type"].as_str(), by_name("note.txt")["mode"].as_u64()), (Some("file"), Some(0o640)));
    assert_eq!(by_name("sub dir")["type"], "dir");
    assert_eq!(by_name("sub dir")["href"], "sub%20dir");
    assert_eq!(by_name("link")["type"], "symlink");

    let live = c.bearer("GET", "/api/v1/datasets/root/files/docs/note.txt", None).await;
    assert_eq!(live.body, b"version two, longer\n");
    assert_eq!(live.header("content-type"), "text/plain; charset=utf-8");
    assert!(live.header("content-security-policy").starts_with("sandbox"));
    let old = c.bearer("GET", "/api/v1/datasets/root%40b1/files/docs/note.txt?download=1", None).await;
    assert_eq!(old.body, b"version one\n", "the snapshot keeps what was written before it");
    assert!(old.header("content-disposition").starts_with("attachment; filename=\"note.txt\""));
    let blob_back = c.bearer("GET", "/api/v1/datasets/root@b1/files/docs/sub%20dir/blob.bin", None).await;
    assert_eq!(blob_back.body.len(), big.len());
    assert!(blob_back.body == big, "3 MiB read back over HTTP");
    let link = c.bearer("GET", "/api/v1/datasets/root/files/docs/link", None).await.json();
    assert_eq!(link["target"], "note.txt");
    assert_eq!(c.bearer("GET", "/api/v1/datasets/root/files/docs/missing", None).await.status, 404);
    assert_eq!(c.bearer("GET", "/api/v1/datasets/root/files/docs/note.txt/x", None).await.status, 409);

    // The snapshot's tree as tar: every entry, with its bytes and modes.
    let tar = c.bearer("GET", "/api/v1/datasets/root@b1/files/docs?tar=1", None).await;
    assert_eq!(tar.status, 200);
    assert_eq!(tar.header("content-type"), "application/x-tar");
    let mut archive = tar::Archive::new(&tar.body[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        match path.as_str() {
            "docs/note.txt" => assert_eq!((data.as_slice(), mode), (&b"version one\n"[..], 0o640)),
            "docs/sub dir/blob.bin" => assert!(data == big && mode == 0o600),
            "docs/link" => assert_eq!(e.link_name().unwrap().unwrap().to_str(), Some("note.txt")),
            _ => {}
        }
        seen.push(path);
    }
    seen.sort();
    assert_eq!(seen, ["docs/", "docs/link", "docs/note.txt", "docs/sub dir/", "docs/sub dir/blob.bin"]);
    assert_eq!(c.bearer("GET", "/api/v1/datasets/root/files/docs/note.txt?tar=1", None).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_then_restore_read_back_over_nfs() {
    let c = Console::start();
    let mut nfs = Client::mount(c.server.nfs_port, "/").await.unwrap();
    let root = nfs.root.clone();
    let work = nfs.mkdir(&root, b"work", 0o755).await.unwrap();
    let mut files = Vec::new();
    for (name, body) in [("keep.txt", "unchanged\n"), ("grow.txt", "short\n"), ("same.txt", "same bytes\n"), ("edit.txt", "AAAA\n"), ("gone.txt", "bye\n")] {
        let f = nfs.create(&work, name.as_bytes(), 0o644).await.unwrap();
        nfs.write(&f, 0, body.as_bytes()).await.unwrap();
        files.push(f);
    }
    let tree = nfs.mkdir(&work, b"tree", 0o755).await.unwrap();
    let leaf = nfs.create(&tree, b"leaf.txt", 0o600).await.unwrap();
    nfs.write(&leaf, 0, b"leaf in the snapshot\n").await.unwrap();
    c.bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "before" }))).await;

    nfs.write(&files[1], 0, b"short, and now longer\n").await.unwrap();
    // Same bytes, new mtime: changed by mtime, not by content.
    let t = nfs::nfstime3 { seconds: 2_000_000_000, nseconds: 0 };
    nfs.setattr(&files[2], nfs::sattr3 { mtime: nfs::set_mtime::SET_TO_CLIENT_TIME(t), ..Default::default() }).await.unwrap();
    nfs.write(&files[3], 0, b"BBBB\n").await.unwrap();
    nfs.remove(&work, b"gone.txt").await.unwrap();
    let added = nfs.create(&work, b"new.txt", 0o644).await.unwrap();
    nfs.write(&added, 0, b"new\n").await.unwrap();
    nfs.write(&leaf, 0, b"LEAF CHANGED LIVE!!!\n").await.unwrap();

    let d = c.bearer("GET", "/api/v1/datasets/root/diff?from=before&to=live", None).await;
    assert_eq!(d.status, 200, "{}", d.text());
    let d = d.json();
    assert_eq!(names(&d["added"]), ["/work/new.txt"]);
    assert_eq!(names(&d["removed"]), ["/work/gone.txt"]);
    assert_eq!(names(&d["changed"]), ["/work/edit.txt", "/work/grow.txt", "/work/same.txt", "/work/tree/leaf.txt"]);
    let grow = d["changed"].as_array().unwrap().iter().find(|x| x["path"] == "/work/grow.txt").unwrap();
    assert_eq!(grow["reasons"], json!(["size", "mtime"]));
    assert_eq!((grow["from"]["size"].as_u64(), grow["to"]["size"].as_u64()), (Some(6), Some(22)));
    assert_eq!(d["files_compared"], 0, "no content read without content=1");

    // content=1: the same-bytes file drops out; only files whose attributes moved are read
    // (keep.txt is not: the engine tells it is untouched).
    let d = c.bearer("GET", "/api/v1/datasets/root/diff?from=before&content=1", None).await.json();
    assert_eq!(names(&d["changed"]), ["/work/edit.txt", "/work/grow.txt", "/work/tree/leaf.txt"]);
    let edit = d["changed"].as_array().unwrap().iter().find(|x| x["path"] == "/work/edit.txt").unwrap();
    assert_eq!(edit["reasons"], json!(["mtime", "content"]));
    assert_eq!(d["files_compared"], 3, "edit.txt, same.txt and leaf.txt (same sizes, new times)");
    // Snapshot against snapshot, and the errors.
    c.bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "after" }))).await;
    let d = c.bearer("GET", "/api/v1/datasets/root/diff?from=before&to=after", None).await.json();
    assert_eq!(names(&d["added"]), ["/work/new.txt"]);
    assert_eq!(c.bearer("GET", "/api/v1/datasets/root/diff?to=live", None).await.status, 400);
    assert_eq!(c.bearer("GET", "/api/v1/datasets/root/diff?from=nosuch", None).await.status, 404);

    // Beside: the snapshot's version next to the live one, read back over NFS.
    let restore = |body: Value| c.bearer("POST", "/api/v1/datasets/root/restore", Some(body));
    let r = restore(json!({ "snapshot": "before", "path": "/work/edit.txt" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["restored"], "/work/edit.txt.restored-before");
    let beside = nfs.walk("work/edit.txt.restored-before").await.unwrap();
    assert_eq!(nfs.read_all(&beside).await.unwrap(), b"AAAA\n");
    assert_eq!(nfs.read_all(&files[3]).await.unwrap(), b"BBBB\n", "the original is untouched");
    assert_eq!(restore(json!({ "snapshot": "before", "path": "/work/edit.txt" })).await.status, 409, "the copy exists");
    // A file deleted since comes back under its own name.
    let r = restore(json!({ "snapshot": "before", "path": "/work/gone.txt" })).await.json();
    assert_eq!(r["restored"], "/work/gone.txt");
    let gone = nfs.walk("work/gone.txt").await.unwrap();
    assert_eq!(nfs.read_all(&gone).await.unwrap(), b"bye\n");

    // Replace needs confirm, and then puts the whole directory back.
    let r = restore(json!({ "snapshot": "before", "path": "/work/tree", "mode": "replace" })).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("confirm"));
    assert_eq!(nfs.read_all(&leaf).await.unwrap(), b"LEAF CHANGED LIVE!!!\n", "nothing replaced without confirm");
    let r = restore(json!({ "snapshot": "before", "path": "/work/tree", "mode": "replace", "confirm": true })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let leaf_now = nfs.walk("work/tree/leaf.txt").await.unwrap();
    assert_eq!(nfs.read_all(&leaf_now).await.unwrap(), b"leaf in the snapshot\n");
    assert_eq!(nfs.getattr(&leaf_now).await.unwrap().mode & 0o7777, 0o600);
    let mut left = nfs.readdir_all(&work).await.unwrap();
    left.sort();
    let left: Vec<String> = left.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
    assert_eq!(left, ["edit.txt", "edit.txt.restored-before", "gone.txt", "grow.txt", "keep.txt", "new.txt", "same.txt", "tree"], "no temporary names left");
    // The restored tree now equals the snapshot's by content.
    let d = c.bearer("GET", "/api/v1/datasets/root/diff?from=before&content=1", None).await.json();
    assert!(!names(&d["changed"]).iter().any(|p| p.starts_with("/work/tree")), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_clone_and_quota_through_the_registry() {
    let c = Console::start();
    let bearer = |m, p, b| c.bearer(m, p, b);
    let r = bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "Bad/Name" }))).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("[a-z0-9._-]"), "the CLI's message");
    assert_eq!(bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "q1" }))).await.status, 201);
    assert_eq!(bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "q1" }))).await.status, 409);
    assert_eq!(bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "nam": "x" }))).await.status, 400);
    assert_eq!(bearer("POST", "/api/v1/datasets/nosuch/snapshots", Some(json!({ "name": "x" }))).await.status, 404);

    let r = bearer("POST", "/api/v1/datasets/root/clone", Some(json!({ "snapshot": "q1", "name": "copy" }))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["origin"]["name"], "q1");
    let r = bearer("POST", "/api/v1/datasets/copy/clone", Some(json!({ "snapshot": "q1", "name": "copy2" }))).await;
    assert_eq!(r.status, 404, "q1 is root's snapshot, not copy's");
    assert_eq!(bearer("DELETE", "/api/v1/datasets/copy/snapshots/q1", None).await.status, 404);

    let r = bearer("POST", "/api/v1/datasets/copy/quota", Some(json!({ "quota": "64KiB" }))).await;
    assert_eq!(r.json()["quota_bytes"], 65536);
    let r = bearer("POST", "/api/v1/datasets/copy/quota", Some(json!({ "quota": "lots" }))).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let mut nfs = Client::mount(c.server.nfs_port, "/copy").await.unwrap();
    let f = nfs.create(&nfs.root.clone(), b"fill", 0o644).await.unwrap();
    nfs.write(&f, 0, &pattern(1, 65536)).await.unwrap();
    let d = bearer("GET", "/api/v1/datasets/copy", None).await.json();
    assert_eq!(d["health"]["state"], "over_quota", "{d}");
    assert_eq!(d["used_bytes"], 65536);

    // A restore that does not fit the quota answers 507 and leaves nothing behind.
    bearer("POST", "/api/v1/datasets/copy/snapshots", Some(json!({ "name": "full" }))).await;
    let r = bearer("POST", "/api/v1/datasets/copy/restore", Some(json!({ "snapshot": "full", "path": "/fill" }))).await;
    assert_eq!(r.status, 507, "{}", r.text());
    let left: Vec<Vec<u8>> = nfs.readdir_all(&nfs.root.clone()).await.unwrap();
    let left: Vec<&[u8]> = left.iter().map(|n| n.as_slice()).filter(|n| !n.starts_with(b".")).collect();
    assert_eq!(left, [&b"fill"[..]], "the partial copy was removed");

    let r = bearer("DELETE", "/api/v1/datasets/root/snapshots/q1", None).await.json();
    assert_eq!((r["removed"].as_bool(), r["dependants"].clone()), (Some(false), json!(["copy"])));
    let list = bearer("GET", "/api/v1/datasets", None).await.json();
    let copy = list["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "copy").cloned().unwrap();
    assert_eq!(copy["snapshot_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_and_quota_refusals_change_nothing() {
    let c = Console::start();
    let bearer = |m, p, b| c.bearer(m, p, b);
    assert_eq!(bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "base" }))).await.status, 201);
    let console = &c;
    let quota_of = |name: &'static str| async move {
        console.bearer("GET", &format!("/api/v1/datasets/{name}"), None).await.json()["quota_bytes"].clone()
    };
    let set = |body: Value| c.bearer("POST", "/api/v1/datasets/root/quota", Some(body));
    assert_eq!(set(json!({ "quota": "1GiB" })).await.status, 200);
    // Bad input: 400 with a message, and the quota stays.
    for bad in [json!({}), json!({ "quota": "lots" }), json!({ "quota": -5 }), json!({ "quota": true }), json!({ "quota": 1, "x": 2 })] {
        let r = set(bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().len() > 5, "{bad}: {}", r.text());
        assert_eq!(quota_of("root").await, 1 << 30, "{bad} changed the quota");
    }
    assert_eq!(c.bearer("POST", "/api/v1/datasets/nosuch/quota", Some(json!({ "quota": 5 }))).await.status, 404);
    // The read-only token and a cookie without CSRF are refused, and change nothing.
    let ro = Auth::Bearer(&c.ro_token);
    let r = c.call("POST", "/api/v1/datasets/root/quota", Some(json!({ "quota": null })), ro).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let (session, csrf) = c.login(&c.token).await;
    let no_csrf = Auth::Cookie { session: &session, csrf: None };
    assert_eq!(c.call("POST", "/api/v1/datasets/root/quota", Some(json!({ "quota": null })), no_csrf).await.status, 403);
    assert_eq!(quota_of("root").await, 1 << 30);
    // "none", as `set-quota none`, removes it (by the page's cookie and CSRF token).
    let page = Auth::Cookie { session: &session, csrf: Some(&csrf) };
    let r = c.call("POST", "/api/v1/datasets/root/quota", Some(json!({ "quota": "none" })), page).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(quota_of("root").await.is_null());

    // Clone: refusals first, each leaving the dataset list as it was.
    let datasets = || async {
        let l = c.bearer("GET", "/api/v1/datasets", None).await.json();
        let mut v: Vec<String> = l["datasets"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().into()).collect();
        v.sort();
        v
    };
    let clone = |body: Value, auth| c.call("POST", "/api/v1/datasets/root/clone", Some(body), auth);
    let admin = Auth::Bearer(&c.token);
    for (body, auth, want) in [
        (json!({ "snapshot": "base", "name": "Bad Name" }), admin, 400),
        (json!({ "snapshot": "base" }), admin, 400),
        (json!({ "snapshot": "nosuch", "name": "c1" }), admin, 404),
        (json!({ "snapshot": "base", "name": "root" }), admin, 409),
        (json!({ "snapshot": "base", "name": "c1" }), ro, 403),
        (json!({ "snapshot": "base", "name": "c1" }), no_csrf, 403),
    ] {
        let r = clone(body.clone(), auth).await;
        assert_eq!(r.status, want, "{body}: {}", r.text());
        assert!(r.json()["error"].is_string());
        assert_eq!(datasets().await, ["root"], "{body} made a dataset");
    }
    let r = clone(json!({ "snapshot": "base", "name": "c1" }), page).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["origin"], json!({ "kind": "clone_of_snapshot", "name": "base" }));
    assert_eq!(clone(json!({ "snapshot": "base", "name": "c1" }), admin).await.status, 409, "exists now");
    assert_eq!(datasets().await, ["c1", "root"]);
}

/// The names people know: what csi-provisioner / csi-snapshotter pass (recorded through the
/// admin API's SetKubernetesRef, as the CSI controller does) shows in the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_names_of_datasets_and_snapshots() {
    use slatefs::admin::{client, proto, AdminAddr};
    let c = Console::start();
    c.bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "snapshot-1a2b" }))).await;
    c.bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "by-hand" }))).await;
    let mut admin = client::connect(&AdminAddr::parse(&c.server.admin).unwrap(), None).await.unwrap();
    let set = |object, namespace: &str, name: &str, content: &str| proto::SetKubernetesRefRequest {
        object: Some(object),
        r#ref: Some(proto::KubernetesRef { namespace: namespace.into(), name: name.into(), content: content.into() }),
    };
    use proto::set_kubernetes_ref_request::Object;
    admin.set_kubernetes_ref(set(Object::Dataset("root".into()), "shop", "orders-db", "pvc-0f3c")).await.unwrap();
    admin.set_kubernetes_ref(set(Object::Snapshot("snapshot-1a2b".into()), "shop", "orders-monday", "snapcontent-9")).await.unwrap();

    let list = c.bearer("GET", "/api/v1/datasets", None).await.json();
    let root = list["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "root").cloned().unwrap();
    let want = json!({ "namespace": "shop", "persistentvolumeclaim": "orders-db", "persistentvolume": "pvc-0f3c" });
    assert_eq!(root["kubernetes"], want);
    assert_eq!(c.bearer("GET", "/api/v1/datasets/root", None).await.json()["kubernetes"], want);
    let snaps = c.bearer("GET", "/api/v1/datasets/root/snapshots", None).await.json();
    let by_name = |n: &str| snaps["snapshots"].as_array().unwrap().iter().find(|s| s["name"] == n).cloned().unwrap();
    assert_eq!(
        by_name("snapshot-1a2b")["kubernetes"],
        json!({ "namespace": "shop", "volumesnapshot": "orders-monday", "volumesnapshotcontent": "snapcontent-9" })
    );
    assert!(by_name("by-hand")["kubernetes"].is_null());
}

fn ms(rfc3339: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis() as u64
}

/// Policies set, paused and cleared from the console through the admin API's own operations;
/// the snapshots a policy made say so (from the policy's record, not from their names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_from_the_console_and_who_made_each_snapshot() {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    std::fs::write(&clock, ms("2026-03-01T10:00:30Z").to_string()).unwrap();
    let c = Console::start_with_env(vec![("SLATEFS_TEST_CLOCK_FILE".into(), clock.display().to_string())]);
    let policy = || async { c.bearer("GET", "/api/v1/datasets/root/policy", None).await.json()["policy"].clone() };
    assert!(policy().await.is_null(), "no policy yet, and no error");
    assert_eq!(c.bearer("GET", "/api/v1/datasets/nosuch/policy", None).await.status, 404);
    // A hand-made snapshot named like one of the policy's: made by hand all the same.
    c.bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "auto-20260301-100000z" }))).await;

    let put = |body: Value, auth| c.call("PUT", "/api/v1/datasets/root/policy", Some(body), auth);
    let admin = Auth::Bearer(&c.token);
    let (session, csrf) = c.login(&c.token).await;
    let good = json!({ "every": "1m", "keep_last": 3, "prefix": "auto" });
    for (body, auth, want, says) in [
        (json!({ "every": "1m" }), admin, 400, "keep-last"),
        (json!({ "every": "0s", "keep_last": 3 }), admin, 400, ""),
        (json!({ "cron": "not cron", "keep_last": 3 }), admin, 400, ""),
        (json!({ "every": "1m", "keep_last": 3, "bogus": 1 }), admin, 400, "bogus"),
        (json!({ "every": "1m", "keep_last": 3, "prefix": "Bad Prefix" }), admin, 400, ""),
        (good.clone(), Auth::Bearer(&c.ro_token), 403, "read"),
        (good.clone(), Auth::Cookie { session: &session, csrf: None }, 403, "CSRF"),
    ] {
        let r = put(body.clone(), auth).await;
        assert_eq!(r.status, want, "{body}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains(says), "{body}: {}", r.text());
        assert!(policy().await.is_null(), "{body} set a policy");
    }
    let r = put(good.clone(), Auth::Cookie { session: &session, csrf: Some(&csrf) }).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let p = r.json()["policy"].clone();
    assert_eq!((p["prefix"].as_str(), p["every_seconds"].as_u64(), p["retention"]["keep_last"].as_u64()), (Some("auto"), Some(60), Some(3)));
    assert_eq!(p["next_run_unix_ms"].as_u64(), Some(ms("2026-03-01T10:01:00Z")));
    // Another dataset's policy may not take the same prefix: 409, and it gets none.
    c.bearer("POST", "/api/v1/datasets/root/clone", Some(json!({ "snapshot": "auto-20260301-100000z", "name": "other" }))).await;
    let r = c.bearer("PUT", "/api/v1/datasets/other/policy", Some(good.clone())).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(c.bearer("GET", "/api/v1/datasets/other/policy", None).await.json()["policy"].is_null());

    // The runner takes the 10:01 slot once the clock passes it.
    std::fs::write(&clock, ms("2026-03-01T10:01:05Z").to_string()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !c.snapshot_names("root").await.contains(&"auto-20260301-100100z".to_string()) {
        assert!(std::time::Instant::now() < deadline, "the policy took no snapshot: {}", policy().await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let snaps = c.bearer("GET", "/api/v1/datasets/root/snapshots", None).await.json();
    let made_by = |n: &str| snaps["snapshots"].as_array().unwrap().iter().find(|s| s["name"] == n).unwrap()["policy"].clone();
    assert_eq!(made_by("auto-20260301-100100z"), json!({ "prefix": "auto", "slot_unix_ms": ms("2026-03-01T10:01:00Z") }));
    assert!(made_by("auto-20260301-100000z").is_null(), "a name is not a record");
    assert_eq!(policy().await["snapshots"], json!(["auto-20260301-100100z"]));

    // Pause and resume; a bad body changes nothing.
    let pause = |body: Value| c.bearer("POST", "/api/v1/datasets/root/policy/pause", Some(body));
    assert_eq!(pause(json!({ "paused": "yes" })).await.status, 400);
    assert_eq!(policy().await["paused"], false);
    assert_eq!(pause(json!({ "paused": true })).await.json()["policy"]["paused"], true);
    assert!(policy().await["next_run_unix_ms"].is_null());
    assert_eq!(pause(json!({ "paused": false })).await.json()["policy"]["paused"], false);
    assert_eq!(c.bearer("POST", "/api/v1/datasets/other/policy/pause", Some(json!({ "paused": true }))).await.status, 404);

    // Clear: the policy goes, its snapshot stays, now as a hand-made one.
    assert_eq!(c.call("DELETE", "/api/v1/datasets/root/policy", None, Auth::Bearer(&c.ro_token)).await.status, 403);
    let r = c.bearer("DELETE", "/api/v1/datasets/root/policy", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["removed"]["prefix"], "auto");
    assert!(policy().await.is_null());
    assert_eq!(c.bearer("DELETE", "/api/v1/datasets/root/policy", None).await.status, 404);
    let snaps = c.bearer("GET", "/api/v1/datasets/root/snapshots", None).await.json();
    let kept = snaps["snapshots"].as_array().unwrap().iter().find(|s| s["name"] == "auto-20260301-100100z").cloned().unwrap();
    assert!(kept["policy"].is_null(), "{kept}");
}

/// `serve` refuses a console without a private token file before it touches the store.
#[test]
fn refused_starts() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "web-token-value\n").unwrap();
    let same = dir.path().join("same");
    std::fs::write(&same, "web-token-value\n").unwrap();
    for p in [&token, &same] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let open = dir.path().join("open");
    std::fs::write(&open, "another-token\n").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let listen = format!("127.0.0.1:{}", server::free_port());
    let cases = [
        (format!("[web]\nlisten = \"{listen}\"\n"), "token_file"),
        (format!("[web]\nlisten = \"{listen}\"\ntoken_file = \"{}\"\n", open.display()), "chmod 600"),
        (
            format!("[web]\nlisten = \"{listen}\"\ntoken_file = \"{}\"\nreadonly_token_file = \"{}\"\n", token.display(), same.display()),
            "same token",
        ),
        (format!("[web]\nlisten = \"{listen}\"\ntoken_file = \"{}\"\n", dir.path().join("missing").display()), "missing"),
    ];
    for (i, (config, want)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let store = dir.path().join(format!("store{i}"));
        let out = Command::new(binary())
            .args(["serve", "-c"])
            .arg(&cfg)
            .arg("--store")
            .arg(format!("file://{}", store.display()))
            .args(["--nfs-listen", &format!("127.0.0.1:{}", server::free_port())])
            .arg("--admin-listen")
            .arg(format!("unix://{}", dir.path().join(format!("a{i}.sock")).display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}");
        assert!(err.contains(want), "{config}: {err}");
        assert!(!store.exists(), "a refused start created the store: {config}");
    }
}

/// The browser test: headless Chromium through Selenium against a real server
/// (tests/web/browser.py). scripts/test.sh installs chromium, chromium-driver and selenium;
/// without them this test fails and says what to install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_browser() {
    console::browser_test().await;
}
