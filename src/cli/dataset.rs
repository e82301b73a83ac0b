//! `slatefs dataset …`: manage datasets and snapshots through a running server's admin API.
//!
//! Exit codes: 0 success, 2 usage error (clap), 1 any other error, with the server's message
//! on stderr.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::admin::client::{self, AdminClient};
use crate::admin::proto;
use crate::admin::AdminAddr;
use crate::config::Config;
use crate::size::{parse_size, SizeError};

#[derive(Args, Debug)]
pub struct DatasetArgs {
    /// Config file (the same one `slatefs serve` uses): gives the admin address, the token
    /// and, on TCP, the TLS CA (`[admin] tls_ca_file`, else the server's `tls_cert_file`).
    #[arg(short = 'c', long = "config", global = true)]
    pub config: Option<PathBuf>,
    /// Admin API address: unix:///PATH or tcp://HOST:PORT [default: [admin] listen from the
    /// config, else admin.sock beside local data, else /run/slatefs/admin.sock]
    #[arg(long, global = true)]
    pub admin: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: DatasetCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Create an empty dataset.
    Create {
        name: String,
        /// Quota (SIZE): bytes, or a number with a unit: K, M, G, T, P (or KB, MB, GB, TB,
        /// PB) are powers of 1000; Ki, Mi, Gi, Ti, Pi (or KiB, MiB, GiB, TiB, PiB) are powers
        /// of 1024; e.g. 10G, 1.5GiB, 512Mi.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        quota: Option<u64>,
    },
    /// List datasets.
    List,
    /// Show one dataset, with its usage.
    Info { name: String },
    /// Delete a dataset (hidden and kept while snapshots or clones need it).
    Delete { name: String },
    /// Snapshot a dataset: a writable snapshot (a new dataset) unless --readonly.
    Snapshot {
        source: String,
        name: String,
        /// A read-only snapshot (exported as /SOURCE@NAME and under .snapshots/NAME).
        #[arg(long)]
        readonly: bool,
    },
    /// List read-only snapshots (of one dataset, or of all).
    ListSnapshots { dataset: Option<String> },
    /// Delete a read-only snapshot (hidden and kept while clones need it).
    DeleteSnapshot { name: String },
    /// Make a new writable dataset from a read-only snapshot.
    Clone {
        snapshot: String,
        new_dataset: String,
    },
    /// Make a dataset's contents those of one of its read-only snapshots (O(1)). Files made
    /// since the snapshot are gone (their NFS handles answer STALE); every snapshot stays.
    Rollback { name: String, snapshot: String },
    /// Make a dataset the default (exported as `/`).
    SetDefault { name: String },
    /// Show the default dataset.
    GetDefault,
    /// Set a dataset's quota (SIZE as for `create --quota`, or `none` to remove it).
    SetQuota {
        name: String,
        #[arg(value_name = "SIZE", value_parser = parse_quota)]
        size: Quota,
    },
    /// Automatic snapshot policies: set, show, pause, resume, clear (docs/policies.md).
    Policy {
        #[command(subcommand)]
        command: super::policy::PolicyCommand,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota(pub Option<u64>);

fn parse_quota(s: &str) -> Result<Quota, SizeError> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Quota(None));
    }
    parse_size(s).map(|v| Quota(Some(v)))
}

pub async fn run(args: DatasetArgs) -> Result<()> {
    if let DatasetCommand::Policy { command } = &args.command {
        if let Err(message) = super::policy::check(command) {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{message}\n")).exit();
        }
    }
    let config = Config::load(args.config.as_deref())?;
    let addr = match &args.admin {
        Some(a) => AdminAddr::parse(a)?,
        None => AdminAddr::from_config(&config)?,
    };
    let token = match &config.admin.token_file {
        Some(path) => Some(crate::admin::read_token(path)?),
        None => None,
    };
    let tls = crate::admin::tls::ClientTls::from_config(&config.admin)?;
    let mut c = client::connect_with(&addr, token.as_deref(), tls.as_ref()).await?;
    let plain_tcp = matches!(addr, AdminAddr::Tcp(_)) && tls.is_none();
    let out = execute(&mut c, args.command).await.map_err(|s| {
        let mut text = status_text(&s);
        // A TLS server drops a plain-text client: the call fails in the transport (a status
        // with a source error; the server's own statuses have none), under varying codes.
        if plain_tcp && std::error::Error::source(&s).is_some() {
            text.push_str(" (if the server serves TLS, set [admin] tls_ca_file)");
        }
        anyhow::anyhow!("{text}")
    })?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&out.json)?),
        Output::Table => print!("{}", out.table),
    }
    Ok(())
}

fn status_text(s: &tonic::Status) -> String {
    match s.code() {
        tonic::Code::Unavailable if s.message().contains("transport") || s.message().contains("connect") => {
            format!("the admin API is unavailable: {}", s.message())
        }
        _ => s.message().to_string(),
    }
}

pub(super) struct Rendered {
    pub(super) json: Value,
    pub(super) table: String,
}

async fn execute(c: &mut AdminClient, cmd: DatasetCommand) -> Result<Rendered, tonic::Status> {
    use DatasetCommand::*;
    Ok(match cmd {
        Create { name, quota } => {
            let d = c.create_dataset(proto::CreateDatasetRequest { name, quota_bytes: quota }).await?.into_inner();
            one_dataset(&d, &format!("created dataset {} (id {})", d.name, d.id))
        }
        List => {
            let ds = c.list_datasets(proto::ListDatasetsRequest {}).await?.into_inner().datasets;
            datasets_table(&ds)
        }
        Info { name } => {
            let d = c.get_dataset(proto::GetDatasetRequest { name }).await?.into_inner();
            Rendered { json: dataset_json(&d), table: dataset_details(&d) }
        }
        Delete { name } => {
            let r = c.delete_dataset(proto::DeleteDatasetRequest { name: name.clone() }).await?.into_inner();
            deleted("dataset", &name, &r)
        }
        Snapshot { source, name, readonly } => {
            let r = c
                .create_snapshot(proto::CreateSnapshotRequest { source: source.clone(), name, readonly })
                .await?
                .into_inner();
            match r.result {
                Some(proto::create_snapshot_response::Result::Dataset(d)) => one_dataset(
                    &d,
                    &format!("created writable snapshot {} of {source} (a dataset, id {})", d.name, d.id),
                ),
                Some(proto::create_snapshot_response::Result::Snapshot(s)) => Rendered {
                    json: snapshot_json(&s),
                    table: format!(
                        "created read-only snapshot {} of {} (id {}, {} at creation)\n",
                        s.name,
                        s.dataset,
                        s.id,
                        human(s.size_bytes)
                    ),
                },
                None => return Err(tonic::Status::internal("empty reply from the server")),
            }
        }
        ListSnapshots { dataset } => {
            let ss = c
                .list_snapshots(proto::ListSnapshotsRequest { dataset: dataset.unwrap_or_default() })
                .await?
                .into_inner()
                .snapshots;
            snapshots_table(&ss)
        }
        DeleteSnapshot { name } => {
            let r = c.delete_snapshot(proto::DeleteSnapshotRequest { name: name.clone() }).await?.into_inner();
            deleted("snapshot", &name, &r)
        }
        Rollback { name, snapshot } => {
            let r = c
                .rollback_dataset(proto::RollbackDatasetRequest { name, snapshot })
                .await?
                .into_inner();
            let (Some(d), Some(s)) = (r.dataset, r.snapshot) else {
                return Err(tonic::Status::internal("empty reply from the server"));
            };
            Rendered {
                json: json!({ "dataset": dataset_json(&d), "snapshot": snapshot_json(&s) }),
                table: format!(
                    "rolled dataset {} (id {}) back to snapshot {}; it now uses {}\n",
                    d.name,
                    d.id,
                    s.name,
                    human(d.used_bytes.unwrap_or(0)),
                ),
            }
        }
        Clone { snapshot, new_dataset } => {
            let d = c
                .clone_snapshot(proto::CloneSnapshotRequest { snapshot: snapshot.clone(), name: new_dataset })
                .await?
                .into_inner();
            one_dataset(&d, &format!("created dataset {} (id {}) from snapshot {snapshot}", d.name, d.id))
        }
        SetDefault { name } => {
            let d = c.set_default(proto::SetDefaultRequest { name }).await?.into_inner();
            one_dataset(&d, &format!("default dataset is now {}", d.name))
        }
        GetDefault => {
            let d = c.get_default(proto::GetDefaultRequest {}).await?.into_inner();
            Rendered { json: dataset_json(&d), table: format!("{}\n", d.name) }
        }
        SetQuota { name, size } => {
            let d = c.set_quota(proto::SetQuotaRequest { name, quota_bytes: size.0 }).await?.into_inner();
            let what = match d.quota_bytes {
                Some(q) => format!("quota of {} is now {} ({q} bytes)", d.name, human(q)),
                None => format!("{} has no quota now", d.name),
            };
            one_dataset(&d, &what)
        }
        Policy { command } => super::policy::execute(c, command).await?,
    })
}

fn one_dataset(d: &proto::Dataset, message: &str) -> Rendered {
    Rendered { json: dataset_json(d), table: format!("{message}\n") }
}

fn deleted(kind: &str, name: &str, r: &proto::DeleteResponse) -> Rendered {
    let table = if r.removed {
        format!("deleted {kind} {name}\n")
    } else {
        format!(
            "deleted {kind} {name}: hidden, its data is kept until these are deleted: {}\n",
            r.dependants.join(", ")
        )
    };
    Rendered { json: json!({ "removed": r.removed, "dependants": r.dependants }), table }
}

fn origin_text(d: &proto::Dataset) -> String {
    match d.origin.as_ref().and_then(|o| o.source.as_ref()) {
        Some(proto::origin::Source::SnapshotOfDataset(n)) => format!("snapshot of {n}"),
        Some(proto::origin::Source::CloneOfSnapshot(n)) => format!("clone of {n}"),
        None => "-".into(),
    }
}

fn dataset_json(d: &proto::Dataset) -> Value {
    let origin = d.origin.as_ref().map(|o| match &o.source {
        Some(proto::origin::Source::SnapshotOfDataset(n)) => {
            json!({ "kind": "writable-snapshot", "dataset": n, "parent_dataset_id": o.parent_dataset_id })
        }
        Some(proto::origin::Source::CloneOfSnapshot(n)) => json!({
            "kind": "clone", "snapshot": n, "parent_dataset_id": o.parent_dataset_id,
            "checkpoint_id": o.checkpoint_id
        }),
        None => Value::Null,
    });
    json!({
        "id": d.id,
        "name": d.name,
        "quota_bytes": d.quota_bytes,
        "created_unix_ms": d.created_unix_ms,
        "origin": origin,
        "is_default": d.is_default,
        "used_bytes": d.used_bytes,
        "used_inodes": d.used_inodes,
        "snapshot_count": d.snapshot_count,
        "clone_count": d.clone_count,
        "owner": (!d.owner.is_empty()).then_some(&d.owner),
        "tables": d.tables.as_ref().map(|t| json!({
            "count": t.tables, "stored_bytes": t.stored_bytes, "raw_bytes": t.raw_bytes,
            "stored_with_stats": t.stored_with_stats, "compression_ratio": compression_ratio(t),
        })),
        "kubernetes": d.kubernetes.as_ref().map(|k| json!({
            "namespace": k.namespace, "persistentvolumeclaim": k.name, "persistentvolume": k.content,
        })),
    })
}

/// `NAMESPACE/NAME` of the Kubernetes object, or `-`.
fn kubernetes_text(k: &Option<proto::KubernetesRef>) -> String {
    match k {
        Some(k) if !k.name.is_empty() => format!("{}/{}", k.namespace, k.name),
        _ => "-".into(),
    }
}

fn snapshot_json(s: &proto::Snapshot) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "dataset": s.dataset,
        "dataset_id": s.dataset_id,
        "checkpoint_id": s.checkpoint_id,
        "created_unix_ms": s.created_unix_ms,
        "size_bytes": s.size_bytes,
        "inodes": s.inodes,
        "clone_count": s.clone_count,
        "dataset_deleted": s.dataset_deleted,
        "kubernetes": s.kubernetes.as_ref().map(|k| json!({
            "namespace": k.namespace, "volumesnapshot": k.name, "volumesnapshotcontent": k.content,
        })),
    })
}

fn datasets_table(ds: &[proto::Dataset]) -> Rendered {
    let rows: Vec<Vec<String>> = ds
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.id.to_string(),
                d.quota_bytes.map(human).unwrap_or_else(|| "-".into()),
                d.snapshot_count.to_string(),
                origin_text(d),
                if d.owner.is_empty() { "-".into() } else { d.owner.clone() },
                kubernetes_text(&d.kubernetes),
                if d.is_default { "*".into() } else { String::new() },
            ]
        })
        .collect();
    Rendered {
        json: Value::Array(ds.iter().map(dataset_json).collect()),
        table: table(&["NAME", "ID", "QUOTA", "SNAPSHOTS", "ORIGIN", "OWNER", "PVC", "DEFAULT"], &rows),
    }
}

fn snapshots_table(ss: &[proto::Snapshot]) -> Rendered {
    let rows: Vec<Vec<String>> = ss
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                if s.dataset_deleted { format!("{} (deleted)", s.dataset) } else { s.dataset.clone() },
                s.id.to_string(),
                human(s.size_bytes),
                time_text(s.created_unix_ms),
                s.clone_count.to_string(),
                kubernetes_text(&s.kubernetes),
            ]
        })
        .collect();
    Rendered {
        json: Value::Array(ss.iter().map(snapshot_json).collect()),
        table: table(&["NAME", "DATASET", "ID", "SIZE", "CREATED", "CLONES", "VOLUMESNAPSHOT"], &rows),
    }
}

/// Raw bytes per stored byte of the tables whose stats are known, to two places.
fn compression_ratio(t: &proto::TableSizes) -> Option<f64> {
    (t.stored_with_stats > 0).then(|| (t.raw_bytes as f64 / t.stored_with_stats as f64 * 100.0).round() / 100.0)
}

fn tables_text(t: &proto::TableSizes) -> String {
    let tables = if t.tables == 1 { "1 table".to_string() } else { format!("{} tables", t.tables) };
    match compression_ratio(t) {
        Some(r) => format!("{} in {tables}, {r:.2}x compressed ({} raw)", human(t.stored_bytes), human(t.raw_bytes)),
        None => format!("{} in {tables}", human(t.stored_bytes)),
    }
}

fn dataset_details(d: &proto::Dataset) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<10} {v}\n"));
    line("name:", d.name.clone());
    line("id:", d.id.to_string());
    line("default:", if d.is_default { "yes".into() } else { "no".into() });
    line("quota:", d.quota_bytes.map(|q| format!("{} ({q} bytes)", human(q))).unwrap_or_else(|| "none".into()));
    line("used:", d.used_bytes.map(|u| format!("{} ({u} bytes)", human(u))).unwrap_or_else(|| "-".into()));
    line("stored:", d.tables.as_ref().map(tables_text).unwrap_or_else(|| "-".into()));
    line("inodes:", d.used_inodes.map(|u| u.to_string()).unwrap_or_else(|| "-".into()));
    line("origin:", origin_text(d));
    line("snapshots:", d.snapshot_count.to_string());
    line("clones:", d.clone_count.to_string());
    line("owner:", if d.owner.is_empty() { "-".into() } else { d.owner.clone() });
    line("pvc:", kubernetes_text(&d.kubernetes));
    line("pv:", d.kubernetes.as_ref().filter(|k| !k.content.is_empty()).map(|k| k.content.clone()).unwrap_or_else(|| "-".into()));
    line("created:", time_text(d.created_unix_ms));
    s
}

pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: Vec<&str>| {
        let line: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push(header.to_vec());
    for r in rows {
        push(r.iter().map(String::as_str).collect());
    }
    out
}

fn human(bytes: u64) -> String {
    crate::size::format_size(bytes)
}

pub(super) fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        // The one parser (crate::size), as the flags use it.
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10G"), Ok(10_000_000_000));
        assert_eq!(parse_quota("none"), Ok(Quota(None)));
        assert_eq!(parse_quota("2Gi"), Ok(Quota(Some(2 << 30))));
        assert!(parse_quota("lots").is_err());
        assert_eq!(human(512 << 20), "512.0 MiB");
    }
}
