//! RPC counters of the CSI plugin: a tower layer around its gRPC server counts every call by
//! method and status code and times it. `GET /metrics` of `slatefs csi --metrics-listen`
//! shows them (`page`).
//!
//! The status is read from the response headers: tonic answers a failed unary call with a
//! trailers-only response whose headers carry `grpc-status`, while a successful one carries it
//! in the trailers, so headers without it mean OK.

use std::collections::HashMap;
use std::fmt::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tonic::codegen::http;

use super::families::{self, Labels};
use super::histogram::{HistogramSnapshot, LatencyHistogram};

/// gRPC status codes 0..=16.
const CODES: usize = 17;

#[derive(Debug, Default)]
struct MethodCounters {
    by_code: [AtomicU64; CODES],
    latency: LatencyHistogram,
}

/// Counters by full gRPC method path (`/csi.v1.Controller/CreateVolume`).
#[derive(Debug, Default)]
pub struct CsiCounters {
    methods: RwLock<HashMap<String, MethodCounters>>,
}

impl CsiCounters {
    fn record(&self, method: &str, code: usize, elapsed: std::time::Duration) {
        let code = code.min(CODES - 1);
        {
            let methods = self.methods.read().unwrap_or_else(|e| e.into_inner());
            if let Some(m) = methods.get(method) {
                m.by_code[code].fetch_add(1, Relaxed);
                m.latency.record(elapsed);
                return;
            }
        }
        let mut methods = self.methods.write().unwrap_or_else(|e| e.into_inner());
        let m = methods.entry(method.to_string()).or_default();
        m.by_code[code].fetch_add(1, Relaxed);
        m.latency.record(elapsed);
    }

    /// The `/metrics` page of the CSI plugin.
    pub fn page(&self) -> String {
        let methods = self.methods.read().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<MethodRow> = methods
            .iter()
            .map(|(path, m)| {
                let (service, method) = split_path(path);
                MethodRow {
                    service,
                    method,
                    by_code: m.by_code.iter().map(|c| c.load(Relaxed)).collect(),
                    latency: m.latency.snapshot(),
                }
            })
            .collect();
        rows.sort_by(|a, b| (&a.service, &a.method).cmp(&(&b.service, &b.method)));
        families::render(CsiPage { rows })
    }
}

/// `/csi.v1.Node/NodePublishVolume` → (`Node`, `NodePublishVolume`).
fn split_path(path: &str) -> (String, String) {
    let path = path.trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or(("", path));
    let service = service.rsplit('.').next().unwrap_or(service);
    (service.to_string(), method.to_string())
}

#[derive(Debug)]
struct MethodRow {
    service: String,
    method: String,
    by_code: Vec<u64>,
    latency: HistogramSnapshot,
}

#[derive(Debug)]
struct CsiPage {
    rows: Vec<MethodRow>,
}

impl Collector for CsiPage {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), Error> {
        let mut calls: Vec<(Labels, u64)> = Vec::new();
        let mut errors: Vec<(Labels, u64)> = Vec::new();
        let mut latency: Vec<(Labels, &HistogramSnapshot)> = Vec::new();
        for r in &self.rows {
            let base: Labels = vec![("service", r.service.clone()), ("method", r.method.clone())];
            for (code, &n) in r.by_code.iter().enumerate().filter(|(_, n)| **n > 0) {
                let mut l = base.clone();
                l.push(("code", format!("{:?}", tonic::Code::from_i32(code as i32))));
                calls.push((l, n));
            }
            errors.push((base.clone(), r.by_code.iter().skip(1).sum()));
            latency.push((base, &r.latency));
        }
        families::counters(&mut e, "slatefs_csi_calls", "CSI RPCs answered, by service, method and gRPC status code.", calls.iter().map(|(l, v)| (l, *v)))?;
        families::counters(&mut e, "slatefs_csi_call_errors", "CSI RPCs answered with a status other than OK.", errors.iter().map(|(l, v)| (l, *v)))?;
        families::histograms(&mut e, "slatefs_csi_call_duration_seconds", "Time to answer a CSI RPC.", latency.iter().map(|(l, h)| (l, *h)))
    }
}

/// The tower layer for `tonic::transport::Server::builder().layer(..)`.
#[derive(Debug, Clone)]
pub struct CsiMetricsLayer {
    counters: Arc<CsiCounters>,
}

impl CsiMetricsLayer {
    pub fn new(counters: Arc<CsiCounters>) -> CsiMetricsLayer {
        CsiMetricsLayer { counters }
    }
}

impl<S> tower::Layer<S> for CsiMetricsLayer {
    type Service = CsiMetricsService<S>;
    fn layer(&self, inner: S) -> CsiMetricsService<S> {
        CsiMetricsService { inner, counters: self.counters.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct CsiMetricsService<S> {
    inner: S,
    counters: Arc<CsiCounters>,
}

fn status_of<B>(r: &http::Response<B>) -> usize {
    r.headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
}

impl<S, B, RB> tower::Service<http::Request<B>> for CsiMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_string();
        let counters = self.counters.clone();
        let started = Instant::now();
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await;
            // A transport failure is no gRPC answer; count it as UNKNOWN.
            let code = result.as_ref().map(status_of).unwrap_or(2);
            counters.record(&method, code, started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(split_path("/csi.v1.Controller/CreateVolume"), ("Controller".into(), "CreateVolume".into()));
        assert_eq!(split_path("/csi.v1.Node/NodeGetInfo"), ("Node".into(), "NodeGetInfo".into()));
    }
}
