//! The tests' S3 server as a standalone process, for integration tests that run
//! `slatefs serve` against S3 (and for benchmarks):
//!
//!   cargo run --release --example s3_test_server -- --dir D [--port P] [--bucket B]
//!       [--access-key K --secret-key S] [--no-conditional-writes]
//!
//! Prints one line when it accepts connections, then serves until killed (or stdin closes,
//! with `--exit-on-stdin-eof`):
//!
//!   S3 endpoint=http://127.0.0.1:P bucket=B access_key=K secret_key=S region=us-east-1
//!
//! Requests received, by class, and object bytes moved (tests/support/s3_requests.rs):
//! `curl http://127.0.0.1:P/_requests` gives them as JSON at any moment, and the server prints
//! them as its last line when it exits on stdin EOF:
//!
//!   S3 requests {"put":…,"get":…,"head":…,"list":…,"delete":…,"post":…,"other":…,"bytes_in":…,"bytes_out":…}
//!
//! See tests/support/s3.rs for what the server is (s3s + s3s-fs with per-key write locks and
//! TCP_NODELAY) and why.

#[path = "s3.rs"]
mod s3;

use std::io::Write;
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: s3_test_server --dir DIR [--port PORT] [--bucket NAME] [--access-key K] \
         [--secret-key S] [--no-conditional-writes] [--exit-on-stdin-eof]"
    );
    std::process::exit(2)
}

fn main() {
    let mut dir: Option<PathBuf> = None;
    let mut opts = s3::ServerOptions::default();
    let mut exit_on_eof = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(val())),
            "--port" => opts.port = val().parse().unwrap_or_else(|_| usage()),
            "--bucket" => opts.bucket = val(),
            "--access-key" => opts.access_key = val(),
            "--secret-key" => opts.secret_key = val(),
            "--no-conditional-writes" => opts.honour_conditions = false,
            "--exit-on-stdin-eof" => exit_on_eof = true,
            _ => usage(),
        }
    }
    let Some(dir) = dir else { usage() };
    let server = s3::start_s3_blocking(&dir, opts);
    println!(
        "S3 endpoint={} bucket={} access_key={} secret_key={} region={}",
        server.endpoint, server.bucket, server.access_key, server.secret_key, server.region
    );
    std::io::stdout().flush().unwrap();
    if exit_on_eof {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let counts = serde_json::to_string(&server.requests.snapshot()).expect("counts as JSON");
        drop(server);
        println!("S3 requests {counts}");
    } else {
        loop {
            std::thread::park();
        }
    }
}
