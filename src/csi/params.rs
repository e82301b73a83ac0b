//! StorageClass (CreateVolume / GetCapacity / ValidateVolumeCapabilities) and
//! VolumeSnapshotClass (CreateSnapshot) parameters. Unknown keys are INVALID_ARGUMENT so a typo
//! never silently falls back to a default.
//!
//! | key | values | meaning |
//! |-----|--------|---------|
//! | `storeUrl` | a store URL | the object store the volume must live in; it must be the store this driver's catalog owner serves (one driver deployment serves one store), else INVALID_ARGUMENT — a guard against a StorageClass pointing at the wrong deployment |
//! | `durability` | `sync` / `async` | the durability the volume needs; must match the dataset servers' `[durability] mode` (durability is per server, not per dataset), else INVALID_ARGUMENT |
//! | `endpoint`, `region` | text | must equal `[storage] endpoint` / `region` (unset there: must be empty), else INVALID_ARGUMENT |
//! | `pathStyle`, `allowHttp` | `true` / `false` | must equal `[storage] path_style` / `allow_http` (unset: false), else INVALID_ARGUMENT |
//! | `snapshotPolicy` | `none` or `every=1h; keep-hourly=24; …` (`crate::policy::params`) | every volume of the class gets this snapshot policy; also the one key of VolumeAttributesClass parameters (ControllerModifyVolume, CreateVolume's `mutable_parameters`) |
//! | `csi.storage.k8s.io/*` | any | metadata csi-provisioner and csi-snapshotter add with `--extra-create-metadata` (`pvc/name`, `pvc/namespace`, `pv/name`; `volumesnapshot/name`, `volumesnapshot/namespace`, `volumesnapshotcontent/name`), recorded with the dataset or snapshot (see [`pvc_ref`]), and the secret references |
//!
//! The Secrets those references name arrive in the calls' `secrets` maps: see `secrets.rs`.

use std::collections::HashMap;

use tonic::Status;

use crate::config::{Config, DurabilityMode};

pub const KUBERNETES_PREFIX: &str = "csi.storage.k8s.io/";
pub const VOLUME_KEYS: &[&str] = &["storeUrl", "durability", "endpoint", "region", "pathStyle", "allowHttp", "snapshotPolicy"];
/// What a VolumeAttributesClass may set.
pub const MUTABLE_KEYS: &[&str] = &[crate::policy::params::PARAMETER];

/// The PersistentVolumeClaim (and PersistentVolume) a CreateVolume is for, from the
/// provisioner's metadata; `None` when it sent none (no `--extra-create-metadata`) or only
/// part of it.
pub fn pvc_ref(params: &HashMap<String, String>) -> Option<crate::catalog::KubernetesRef> {
    kubernetes_ref(params, "pvc/namespace", "pvc/name", "pv/name")
}

/// The VolumeSnapshot (and VolumeSnapshotContent) a CreateSnapshot is for.
pub fn volumesnapshot_ref(params: &HashMap<String, String>) -> Option<crate::catalog::KubernetesRef> {
    kubernetes_ref(params, "volumesnapshot/namespace", "volumesnapshot/name", "volumesnapshotcontent/name")
}

fn kubernetes_ref(params: &HashMap<String, String>, namespace: &str, name: &str, content: &str) -> Option<crate::catalog::KubernetesRef> {
    let get = |k: &str| params.get(&format!("{KUBERNETES_PREFIX}{k}")).cloned().unwrap_or_default();
    let r = crate::catalog::KubernetesRef { namespace: get(namespace), name: get(name), content: get(content) };
    // Both or nothing: a name without its namespace names nothing (the sidecars send both).
    (!r.name.is_empty() && !r.namespace.is_empty()).then_some(r)
}

/// What the driver's configuration says, to check parameters against.
#[derive(Debug, Clone)]
pub struct Served {
    pub store_url: String,
    pub durability: DurabilityMode,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub allow_http: bool,
}

impl Served {
    pub fn from_config(config: &Config) -> Served {
        let s = &config.storage;
        Served {
            store_url: s.url.clone(),
            durability: config.durability.mode,
            endpoint: s.endpoint.clone(),
            region: s.region.clone(),
            path_style: s.path_style.unwrap_or(false),
            allow_http: s.allow_http.unwrap_or(false),
        }
    }
}

fn must_equal(key: &str, given: &str, served: &str) -> Result<(), Status> {
    if given == served {
        return Ok(());
    }
    Err(Status::invalid_argument(format!(
        "parameter {key} {given:?}: this driver's store has {key} {served:?} (one installation serves one store)"
    )))
}

fn bool_param(key: &str, v: &str) -> Result<bool, Status> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Status::invalid_argument(format!("parameter {key} {v:?}: expected \"true\" or \"false\""))),
    }
}

fn unknown(key: &str, known: &[&str]) -> Status {
    let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
    Status::invalid_argument(format!(
        "unknown parameter {key:?} (known: {known}, and {KUBERNETES_PREFIX}* keys)"
    ))
}

/// Validates StorageClass parameters.
pub fn validate_volume_params(params: &HashMap<String, String>, served: &Served) -> Result<(), Status> {
    for (k, v) in params {
        if k.starts_with(KUBERNETES_PREFIX) {
            continue;
        }
        match k.as_str() {
            "storeUrl" => {
                if v.trim_end_matches('/') != served.store_url.trim_end_matches('/') {
                    return Err(Status::invalid_argument(format!(
                        "parameter storeUrl {v:?}: this driver serves store {:?}",
                        served.store_url
                    )));
                }
            }
            "durability" => {
                let want = match v.as_str() {
                    "sync" => DurabilityMode::Sync,
                    "async" => DurabilityMode::Async,
                    _ => {
                        return Err(Status::invalid_argument(format!(
                            "parameter durability {v:?}: expected \"sync\" or \"async\""
                        )))
                    }
                };
                if want != served.durability {
                    return Err(Status::invalid_argument(format!(
                        "parameter durability {v:?}: the dataset servers run in {:?} mode",
                        served.durability
                    )));
                }
            }
            "endpoint" => must_equal(k, v.trim_end_matches('/'), served.endpoint.as_deref().unwrap_or("").trim_end_matches('/'))?,
            "region" => must_equal(k, v, served.region.as_deref().unwrap_or(""))?,
            "pathStyle" => must_equal(k, &bool_param(k, v)?.to_string(), &served.path_style.to_string())?,
            "allowHttp" => must_equal(k, &bool_param(k, v)?.to_string(), &served.allow_http.to_string())?,
            "snapshotPolicy" => {
                snapshot_policy(v)?;
            }
            _ => return Err(unknown(k, VOLUME_KEYS)),
        }
    }
    Ok(())
}

/// A `snapshotPolicy` value: `None` for `none`.
pub fn snapshot_policy(v: &str) -> Result<Option<crate::policy::PolicyText>, Status> {
    crate::policy::params::parse(v).map_err(|e| Status::invalid_argument(format!("parameter snapshotPolicy {v:?}: {e}")))
}

/// VolumeAttributesClass parameters (ModifyVolume, CreateVolume's `mutable_parameters`):
/// the policy they set — `Some(None)` to remove it, `None` when they do not say.
#[allow(clippy::option_option)]
pub fn mutable_policy(params: &HashMap<String, String>) -> Result<Option<Option<crate::policy::PolicyText>>, Status> {
    let mut policy = None;
    for (k, v) in params {
        match k.as_str() {
            "snapshotPolicy" => policy = Some(snapshot_policy(v)?),
            _ => return Err(unknown(k, MUTABLE_KEYS)),
        }
    }
    Ok(policy)
}

/// The policy a new volume gets: its VolumeAttributesClass's, else its StorageClass's.
#[allow(clippy::option_option)]
pub fn creation_policy(
    params: &HashMap<String, String>,
    mutable: &HashMap<String, String>,
) -> Result<Option<Option<crate::policy::PolicyText>>, Status> {
    match mutable_policy(mutable)? {
        Some(p) => Ok(Some(p)),
        None => params.get("snapshotPolicy").map(|v| snapshot_policy(v)).transpose(),
    }
}

/// Validates VolumeSnapshotClass parameters (none of our own yet).
pub fn validate_snapshot_params(params: &HashMap<String, String>) -> Result<(), Status> {
    match params.keys().find(|k| !k.starts_with(KUBERNETES_PREFIX)) {
        Some(k) => Err(unknown(k, &[])),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> Served {
        Served {
            store_url: "s3://b/data/".into(),
            durability: DurabilityMode::Sync,
            endpoint: Some("http://minio:9000".into()),
            region: None,
            path_style: true,
            allow_http: false,
        }
    }
    fn p(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn volume_params() {
        let s = served();
        assert!(validate_volume_params(&p(&[]), &s).is_ok());
        assert!(validate_volume_params(&p(&[("storeUrl", "s3://b/data"), ("durability", "sync")]), &s).is_ok());
        let store = [("endpoint", "http://minio:9000/"), ("region", ""), ("pathStyle", "true"), ("allowHttp", "false")];
        assert!(validate_volume_params(&p(&store), &s).is_ok());
        assert!(validate_volume_params(&p(&[("csi.storage.k8s.io/pvc/name", "x")]), &s).is_ok());
        for bad in [
            p(&[("storeurl", "s3://b/data")]),
            p(&[("storeUrl", "s3://other")]),
            p(&[("endpoint", "http://other:9000")]),
            p(&[("region", "eu-west-1")]),
            p(&[("pathStyle", "false")]),
            p(&[("pathStyle", "yes")]),
            p(&[("allowHttp", "true")]),
            p(&[("durability", "async")]),
            p(&[("durability", "fast")]),
        ] {
            let e = validate_volume_params(&bad, &s).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
        assert!(validate_volume_params(&p(&[("bogus", "1")]), &s).unwrap_err().message().contains("storeUrl"));
    }

    #[test]
    fn policy_params() {
        let s = served();
        assert!(validate_volume_params(&p(&[("snapshotPolicy", "every=1h; keep-hourly=24")]), &s).is_ok());
        let e = validate_volume_params(&p(&[("snapshotPolicy", "every=1h")]), &s).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("--keep-last"), "{}", e.message());
        let m = mutable_policy(&p(&[("snapshotPolicy", "none")])).unwrap();
        assert_eq!(m, Some(None));
        assert_eq!(mutable_policy(&p(&[])).unwrap(), None);
        assert!(mutable_policy(&p(&[("storeUrl", "x")])).unwrap_err().message().contains("snapshotPolicy"));
        let created = creation_policy(&p(&[("snapshotPolicy", "every=1h; keep-last=2")]), &p(&[("snapshotPolicy", "none")]));
        assert_eq!(created.unwrap(), Some(None));
    }

    #[test]
    fn snapshot_params() {
        assert!(validate_snapshot_params(&p(&[("csi.storage.k8s.io/volumesnapshot/name", "s")])).is_ok());
        let meta = p(&[
            ("csi.storage.k8s.io/volumesnapshot/name", "nightly"),
            ("csi.storage.k8s.io/volumesnapshot/namespace", "shop"),
            ("csi.storage.k8s.io/volumesnapshotcontent/name", "snapcontent-1"),
        ]);
        let r = volumesnapshot_ref(&meta).unwrap();
        assert_eq!((r.namespace.as_str(), r.name.as_str(), r.content.as_str()), ("shop", "nightly", "snapcontent-1"));
        assert_eq!(pvc_ref(&meta), None);
        assert_eq!(volumesnapshot_ref(&p(&[("csi.storage.k8s.io/volumesnapshot/name", "s")])), None, "a name without its namespace");
        assert_eq!(validate_snapshot_params(&p(&[("x", "1")])).unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
