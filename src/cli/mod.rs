//! The command line: `slatefs serve`, `slatefs dataset …`, `slatefs csi …`.

pub mod csi;
pub mod csi_call;
pub mod dataset;
pub mod policy;
pub mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "slatefs",
    version,
    about = "Datasets on object storage, served over NFSv3, with copy-on-write snapshots",
    long_about = "slatefs keeps every dataset (a POSIX filesystem) in its own SlateDB database on \
object storage (a local directory, S3, GCS or Azure), serves datasets and their snapshots over \
NFSv3, and is a Kubernetes CSI driver: a PersistentVolume is a dataset and a VolumeSnapshot a \
constant-time copy-on-write snapshot."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve datasets over NFSv3 and the admin API (the dataset server).
    Serve(serve::ServeArgs),
    /// Manage datasets and snapshots through a running server's admin API.
    Dataset(dataset::DatasetArgs),
    /// Kubernetes CSI driver (controller / node plugin), and `csi call` to call one RPC.
    Csi(csi::CsiArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Csi(args) => csi::run(args).await,
        Command::Dataset(args) => dataset::run(args).await,
    }
}
