//! Object-store credentials from CSI secrets (the Secret a StorageClass names through
//! `csi.storage.k8s.io/provisioner-secret-name` and friends).
//!
//! | key | alias | meaning |
//! |-----|-------|---------|
//! | `accessKeyId` | `AWS_ACCESS_KEY_ID` | S3 access key id (required with any other key) |
//! | `secretAccessKey` | `AWS_SECRET_ACCESS_KEY` | S3 secret access key (required with any other key) |
//! | `sessionToken` | `AWS_SESSION_TOKEN` | session token of temporary credentials (optional) |
//!
//! The aliases let one Secret serve both the chart's servers (`storage.credentials.secretName`,
//! read as environment variables) and a StorageClass. No secret at all is fine: the volume then
//! simply uses the installation's store. Any other key, a key given twice with different
//! values, an empty value or half a key pair is INVALID_ARGUMENT, naming the key, never a value.
//!
//! What the driver does with them: every controller call that carries a secret (CreateVolume,
//! DeleteVolume, CreateSnapshot, DeleteSnapshot, ControllerExpandVolume, and the snapshot
//! queries) first has the catalog owner prove, with the store's start-up checks made with these
//! credentials, that they may list, write and delete in the store the StorageClass names
//! (`storeUrl`, else the installation's); NodePublishVolume has the node's dataset server do the
//! same. A volume is thus provisioned, changed, snapshotted and mounted only for a StorageClass
//! whose Secret the store itself accepts. The data path keeps using the servers' own
//! credentials (a dataset server serves many volumes over one store client, and must keep
//! serving a mounted volume after a restart, when no CSI call brings a secret); slatefs stores
//! CSI secrets nowhere.

use std::collections::HashMap;

use tonic::Status;

pub use crate::admin::store_access::S3Credentials;

/// `(key, alias)` of every accepted secret key.
const KEYS: [(&str, &str); 3] = [
    ("accessKeyId", "AWS_ACCESS_KEY_ID"),
    ("secretAccessKey", "AWS_SECRET_ACCESS_KEY"),
    ("sessionToken", "AWS_SESSION_TOKEN"),
];

fn known() -> String {
    KEYS.iter().map(|(k, a)| format!("{k} (or {a})")).collect::<Vec<_>>().join(", ")
}

/// The value under `key` or its alias.
fn one<'a>(secrets: &'a HashMap<String, String>, (key, alias): (&str, &str)) -> Result<Option<&'a str>, Status> {
    let value = match (secrets.get(key), secrets.get(alias)) {
        (Some(a), Some(b)) if a != b => {
            return Err(Status::invalid_argument(format!(
                "secret keys {key} and {alias} are the same setting and hold different values"
            )))
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Ok(None),
    };
    if value.trim().is_empty() {
        return Err(Status::invalid_argument(format!("secret key {key} is empty")));
    }
    Ok(Some(value.trim()))
}

/// The credentials a CSI `secrets` map carries; `None` for an empty map.
pub fn parse(secrets: &HashMap<String, String>) -> Result<Option<S3Credentials>, Status> {
    if secrets.is_empty() {
        return Ok(None);
    }
    if let Some(k) = secrets.keys().find(|k| !KEYS.iter().any(|(a, b)| k == a || k == b)) {
        return Err(Status::invalid_argument(format!("unknown secret key {k:?} (known: {})", known())));
    }
    let id = one(secrets, KEYS[0])?;
    let key = one(secrets, KEYS[1])?;
    let token = one(secrets, KEYS[2])?;
    match (id, key) {
        (Some(id), Some(key)) => Ok(Some(S3Credentials {
            access_key_id: id.to_string(),
            secret_access_key: key.to_string(),
            session_token: token.map(str::to_string),
        })),
        _ => Err(Status::invalid_argument(
            "the secret needs both accessKeyId and secretAccessKey (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn keys_and_aliases() {
        assert!(parse(&m(&[])).unwrap().is_none());
        let c = parse(&m(&[("accessKeyId", "AK"), ("secretAccessKey", "SK")])).unwrap().unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str(), c.session_token), ("AK", "SK", None));
        let c = parse(&m(&[("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK"), ("sessionToken", "T")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.session_token.as_deref(), Some("T"));
        // The same value under both spellings is one setting.
        assert!(parse(&m(&[("accessKeyId", "AK"), ("AWS_ACCESS_KEY_ID", "AK"), ("secretAccessKey", "SK")])).is_ok());
    }

    #[test]
    fn bad_secrets_are_invalid_and_never_echo_values() {
        for bad in [
            m(&[("accessKeyId", "AK"), ("secretAccessKey", "hunter2"), ("region", "x")]),
            m(&[("accessKeyId", "AK")]),
            m(&[("secretAccessKey", "hunter2")]),
            m(&[("sessionToken", "hunter2")]),
            m(&[("accessKeyId", "AK"), ("secretAccessKey", " ")]),
            m(&[("accessKeyId", "AK"), ("secretAccessKey", "hunter2"), ("AWS_SECRET_ACCESS_KEY", "hunter3")]),
        ] {
            let e = parse(&bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
            assert!(!e.message().contains("hunter"), "{}", e.message());
        }
        assert!(parse(&m(&[("region", "x")])).unwrap_err().message().contains("accessKeyId"));
    }
}
