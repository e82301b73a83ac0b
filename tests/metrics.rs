//! Prometheus metrics and the names people know (docs/metrics.md): the `/metrics` pages of a
//! real `slatefs serve` and a real `slatefs csi`, fetched over HTTP and parsed by a real
//! Prometheus text-format parser (PyPI prometheus-client), while the tests drive NFS traffic
//! with a real NFSv3 client and CSI calls on the plugin's socket.

#[path = "support/csi.rs"]
mod csi;
#[path = "support/json_logs.rs"]
mod json_logs;
#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/server.rs"]
mod server;

#[path = "metrics/csi_names.rs"]
mod csi_names;
#[path = "metrics/compression_ratio.rs"]
mod compression_ratio;
#[path = "metrics/serve_page.rs"]
mod serve_page;

use server::{free_port, Server, ServerOptions};

/// A `slatefs serve` with its metrics page on a free port, and the page's URL.
pub fn server_with_metrics() -> (Server, String) {
    let port = free_port();
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--metrics-listen".into(), format!("127.0.0.1:{port}")],
        ..Default::default()
    });
    (server, format!("http://127.0.0.1:{port}/metrics"))
}

/// `slatefs dataset --admin <server's socket> ARGS…`.
pub fn dataset_cli(server: &Server, args: &[&str]) -> std::process::Output {
    let mut all = vec!["dataset", "--admin", &server.admin];
    all.extend_from_slice(args);
    server.cli(&all)
}
