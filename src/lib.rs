//! slatefs: datasets stored in SlateDB on object storage, served over NFSv3, managed by a CLI,
//! an admin gRPC API and a Kubernetes CSI driver. Layers (one-way):
//! cli → admin/csi/web → policy → catalog → fs → store; nfs → catalog, fs.

pub mod config;
pub mod size;
pub mod metrics;
pub mod store;
pub mod cluster;
pub mod fs;
pub mod catalog;
pub mod policy;
pub mod admin;
pub mod web;
pub mod nfs;
pub mod cli;
pub mod csi;
