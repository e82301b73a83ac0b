//! Prometheus metrics: `GET /metrics` of `slatefs serve` (`[metrics] listen`) and of the CSI
//! plugin (`--metrics-listen`). docs/metrics.md lists every family.
//!
//! Two halves, kept apart so that the layers stay one-way:
//! - counters the serving paths bump, made of atomics and owning no names: `histogram`,
//!   `nfs` (the RPC layer's per-export counters), `events` (durability waits, fencing,
//!   ownership changes), `csi` (RPC counts of the CSI services). Any layer may use them;
//!   they use nothing of slatefs.
//! - the pages, which read those counters and the catalog at scrape time and write the
//!   Prometheus text format with prometheus-client: `families`, `server_page`, `http`.

pub mod csi;
pub mod events;
pub mod families;
pub mod histogram;
pub mod http;
pub mod nfs;
pub mod server_page;
