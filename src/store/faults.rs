//! Fault injection: an `ObjectStore` wrapper that makes the store misbehave the way real object
//! stores do — 503s, requests that hang until they time out, connection resets (before the
//! request is applied, or after it, so that only the reply is lost), added latency, and whole
//! outages — per operation kind, changeable while it runs. For tests, and for
//! `slatefs serve --inject-faults SPEC`.
//!
//! It sits above request accounting (injected failures never reach the backend and are not
//! counted as requests) and below SlateDB's own retry layer, so SlateDB sees exactly what it
//! would see from a failing S3.
//!
//! # Spec syntax (`--inject-faults`)
//!
//! A comma-separated list of `[OPS.]KEY=VALUE` items; later items override earlier ones.
//!
//! `OPS` is one operation kind or several joined by `+`: `get`, `head`, `put`, `list`,
//! `delete`, `copy`, or `all` / `*`. A per-operation key without `OPS` applies to all kinds.
//!
//! Per-operation keys (probabilities are `0.05` or `5%`, per request; their sum must be ≤ 1):
//! - `error=P`      fail at once with a retryable 503-like error; nothing is applied
//! - `timeout=P`    hang for `hang`, then fail with a timeout; nothing is applied
//! - `reset=P`      fail with a connection reset; nothing is applied
//! - `lost-reply=P` apply the request, then fail with a connection reset (the ambiguous case:
//!   a conditional PUT retried after this finds its own object — SlateDB checks its put id)
//! - `latency=D`    add D (e.g. `20ms`, `1s`) before every request
//! - `jitter=D`     add a further uniform random 0..D
//!
//! Global keys:
//! - `hang=D`          how long a `timeout` (and an outage in `hang` mode) hangs; default 10s
//! - `outage=on|off`   start with the store down (default off)
//! - `outage-mode=error|hang`  while down, every request fails at once with a 503 (`error`,
//!   the default), or hangs until the store is back (then proceeds) or `hang` has passed (then
//!   fails with a timeout)
//! - `outage-file=PATH`  the store is down while PATH exists: `touch PATH` starts an outage in a
//!   running process, `rm PATH` ends it (checked at most every 100 ms)
//! - `seed=N`          seed of the random choices (default: random)
//!
//! Example: `put.error=2%,get+head.latency=15ms,jitter=5ms,outage-file=/tmp/slatefs-down`

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The request classes faults are configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Get = 0,
    Head = 1,
    Put = 2,
    List = 3,
    Delete = 4,
    Copy = 5,
}

pub const OP_KINDS: [OpKind; 6] =
    [OpKind::Get, OpKind::Head, OpKind::Put, OpKind::List, OpKind::Delete, OpKind::Copy];

impl OpKind {
    pub fn name(self) -> &'static str {
        ["get", "head", "put", "list", "delete", "copy"][self as usize]
    }
}

/// What happens to requests of one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpFaults {
    pub error: f64,
    pub timeout: f64,
    pub reset: f64,
    pub lost_reply: f64,
    pub latency: Duration,
    pub jitter: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutageMode {
    /// Every request fails at once with a 503.
    #[default]
    Error,
    /// Every request waits for the store to come back, or fails after `hang`.
    Hang,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Indexed by `OpKind as usize`.
    pub ops: [OpFaults; 6],
    pub hang: Duration,
    pub outage: bool,
    pub outage_mode: OutageMode,
    pub outage_file: Option<PathBuf>,
    pub seed: Option<u64>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            ops: Default::default(),
            hang: Duration::from_secs(10),
            outage: false,
            outage_mode: OutageMode::Error,
            outage_file: None,
            seed: None,
        }
    }
}

impl FaultPlan {
    pub fn op(&self, kind: OpKind) -> &OpFaults {
        &self.ops[kind as usize]
    }

    pub fn op_mut(&mut self, kind: OpKind) -> &mut OpFaults {
        &mut self.ops[kind as usize]
    }

    /// Sets the same faults for every kind.
    pub fn all(mut self, f: OpFaults) -> Self {
        for k in OP_KINDS {
            self.ops[k as usize] = f.clone();
        }
        self
    }
}

/// Parses an `--inject-faults` spec (syntax in the module documentation).
pub fn parse_spec(spec: &str) -> Result<FaultPlan> {
    let mut plan = FaultPlan::default();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (lhs, value) = item
            .split_once('=')
            .with_context(|| format!("fault spec item {item:?}: expected KEY=VALUE"))?;
        let (lhs, value) = (lhs.trim(), value.trim());
        match lhs {
            "hang" => plan.hang = duration(lhs, value)?,
            "outage" => {
                plan.outage = match value {
                    "on" | "down" | "true" | "1" => true,
                    "off" | "up" | "false" | "0" => false,
                    _ => bail!("fault spec: outage={value:?}: expected on or off"),
                }
            }
            "outage-mode" => {
                plan.outage_mode = match value {
                    "error" => OutageMode::Error,
                    "hang" => OutageMode::Hang,
                    _ => bail!("fault spec: outage-mode={value:?}: expected error or hang"),
                }
            }
            "outage-file" => {
                if value.is_empty() {
                    bail!("fault spec: outage-file needs a path");
                }
                plan.outage_file = Some(PathBuf::from(value));
            }
            "seed" => {
                plan.seed =
                    Some(value.parse().with_context(|| format!("fault spec: seed={value:?}"))?)
            }
            _ => {
                let (ops, key) = match lhs.rsplit_once('.') {
                    Some((ops, key)) => (parse_ops(ops)?, key),
                    None => (OP_KINDS.to_vec(), lhs),
                };
                for kind in ops {
                    let f = plan.op_mut(kind);
                    match key {
                        "error" => f.error = probability(item, value)?,
                        "timeout" => f.timeout = probability(item, value)?,
                        "reset" => f.reset = probability(item, value)?,
                        "lost-reply" => f.lost_reply = probability(item, value)?,
                        "latency" => f.latency = duration(item, value)?,
                        "jitter" => f.jitter = duration(item, value)?,
                        _ => bail!(
                            "fault spec item {item:?}: unknown key {key:?} (per operation: error, \
                             timeout, reset, lost-reply, latency, jitter; global: hang, outage, \
                             outage-mode, outage-file, seed)"
                        ),
                    }
                }
            }
        }
    }
    for kind in OP_KINDS {
        let f = plan.op(kind);
        let sum = f.error + f.timeout + f.reset + f.lost_reply;
        if sum > 1.0 + 1e-9 {
            bail!("fault spec: the fault probabilities of {} add up to {sum} > 1", kind.name());
        }
    }
    Ok(plan)
}

fn parse_ops(s: &str) -> Result<Vec<OpKind>> {
    let mut out = Vec::new();
    for name in s.split('+') {
        match name.trim() {
            "all" | "*" => out.extend(OP_KINDS),
            n => out.push(
                OP_KINDS.into_iter().find(|k| k.name() == n).with_context(|| {
                    format!(
                        "fault spec: unknown operation {n:?} (get, head, put, list, delete, copy, all)"
                    )
                })?,
            ),
        }
    }
    Ok(out)
}

fn probability(item: &str, v: &str) -> Result<f64> {
    let p = match v.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|x| x / 100.0),
        None => v.parse::<f64>(),
    }
    .with_context(|| format!("fault spec item {item:?}: {v:?} is not a probability"))?;
    if !(0.0..=1.0).contains(&p) {
        bail!("fault spec item {item:?}: probability {p} is not within 0..=1");
    }
    Ok(p)
}

fn duration(item: &str, v: &str) -> Result<Duration> {
    humantime::parse_duration(v)
        .with_context(|| format!("fault spec item {item:?}: {v:?} is not a duration (e.g. 20ms)"))
}

/// Counts of injected faults, by kind of fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedStats {
    pub errors: u64,
    pub timeouts: u64,
    pub resets: u64,
    pub lost_replies: u64,
    /// Requests refused or timed out because the store was down.
    pub outage_failures: u64,
}

impl InjectedStats {
    pub fn total(&self) -> u64 {
        self.errors + self.timeouts + self.resets + self.lost_replies + self.outage_failures
    }
}

#[derive(Debug, Default)]
struct InjectedCounters {
    errors: AtomicU64,
    timeouts: AtomicU64,
    resets: AtomicU64,
    lost_replies: AtomicU64,
    outage_failures: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    plan: RwLock<FaultPlan>,
    rng: Mutex<StdRng>,
    injected: InjectedCounters,
    /// (checked at, exists) for the outage file.
    file_cache: Mutex<Option<(Instant, bool)>>,
}

/// Changes the faults of a running [`FaultInjector`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct FaultControl {
    shared: Arc<Shared>,
}

impl FaultControl {
    pub fn new(plan: FaultPlan) -> FaultControl {
        let rng = match plan.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        FaultControl {
            shared: Arc::new(Shared {
                plan: RwLock::new(plan),
                rng: Mutex::new(rng),
                injected: InjectedCounters::default(),
                file_cache: Mutex::new(None),
            }),
        }
    }

    pub fn plan(&self) -> FaultPlan {
        self.shared.plan.read().unwrap().clone()
    }

    pub fn set_plan(&self, plan: FaultPlan) {
        *self.shared.plan.write().unwrap() = plan;
        *self.shared.file_cache.lock().unwrap() = None;
    }

    pub fn update(&self, f: impl FnOnce(&mut FaultPlan)) {
        f(&mut self.shared.plan.write().unwrap());
        *self.shared.file_cache.lock().unwrap() = None;
    }

    /// Starts (`true`) or ends (`false`) an outage.
    pub fn set_outage(&self, down: bool) {
        self.update(|p| p.outage = down);
    }

    /// Whether the store is down now (the flag, or the outage file).
    pub fn is_down(&self) -> bool {
        let (flag, file) = {
            let p = self.shared.plan.read().unwrap();
            (p.outage, p.outage_file.clone())
        };
        if flag {
            return true;
        }
        let Some(file) = file else { return false };
        let mut cache = self.shared.file_cache.lock().unwrap();
        match *cache {
            Some((at, exists)) if at.elapsed() < Duration::from_millis(100) => exists,
            _ => {
                let exists = file.exists();
                *cache = Some((Instant::now(), exists));
                exists
            }
        }
    }

    pub fn injected(&self) -> InjectedStats {
        let c = &self.shared.injected;
        InjectedStats {
            errors: c.errors.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            resets: c.resets.load(Relaxed),
            lost_replies: c.lost_replies.load(Relaxed),
            outage_failures: c.outage_failures.load(Relaxed),
        }
    }

    /// Decides the fate of one request. `Ok(true)`: apply it, then lose the reply.
    async fn before(&self, kind: OpKind) -> object_store::Result<bool> {
        let (f, hang, mode) = {
            let p = self.shared.plan.read().unwrap();
            (p.op(kind).clone(), p.hang, p.outage_mode)
        };
        let (roll, jitter) = {
            let mut rng = self.shared.rng.lock().unwrap();
            let roll: f64 = rng.gen();
            let jitter = if f.jitter.is_zero() {
                Duration::ZERO
            } else {
                f.jitter.mul_f64(rng.gen::<f64>())
            };
            (roll, jitter)
        };
        let delay = f.latency + jitter;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let c = &self.shared.injected;
        if self.is_down() {
            match mode {
                OutageMode::Error => {
                    c.outage_failures.fetch_add(1, Relaxed);
                    return Err(unavailable(kind, "the object store is down (injected outage)"));
                }
                OutageMode::Hang => {
                    let until = Instant::now() + hang;
                    while self.is_down() {
                        if Instant::now() >= until {
                            c.outage_failures.fetch_add(1, Relaxed);
                            return Err(timed_out(kind, hang));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        let mut edge = f.error;
        if roll < edge {
            c.errors.fetch_add(1, Relaxed);
            return Err(unavailable(kind, "503 Service Unavailable (injected)"));
        }
        edge += f.timeout;
        if roll < edge {
            tokio::time::sleep(hang).await;
            c.timeouts.fetch_add(1, Relaxed);
            return Err(timed_out(kind, hang));
        }
        edge += f.reset;
        if roll < edge {
            c.resets.fetch_add(1, Relaxed);
            return Err(reset(kind, "before the request was applied"));
        }
        edge += f.lost_reply;
        Ok(roll < edge)
    }

    /// After a request that was to lose its reply.
    fn after<T>(&self, kind: OpKind, lose: bool, r: object_store::Result<T>) -> object_store::Result<T> {
        if lose && r.is_ok() {
            self.shared.injected.lost_replies.fetch_add(1, Relaxed);
            return Err(reset(kind, "after the request was applied (reply lost)"));
        }
        r
    }
}

const STORE: &str = "fault-injection";

fn unavailable(kind: OpKind, what: &str) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: format!("{}: {what}", kind.name()).into() }
}

fn timed_out(kind: OpKind, after: Duration) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{}: request timed out after {after:?} (injected)", kind.name()),
        )),
    }
}

fn reset(kind: OpKind, when: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            format!("{}: connection reset {when} (injected)", kind.name()),
        )),
    }
}

/// The wrapper. Build it over the store to disturb; keep its [`FaultControl`] to steer it.
#[derive(Debug)]
pub struct FaultInjector {
    inner: Arc<dyn ObjectStore>,
    control: FaultControl,
}

impl FaultInjector {
    pub fn new(inner: Arc<dyn ObjectStore>, control: FaultControl) -> FaultInjector {
        FaultInjector { inner, control }
    }

    pub fn control(&self) -> &FaultControl {
        &self.control
    }
}

impl fmt::Display for FaultInjector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultInjector({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultInjector {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let lose = self.control.before(OpKind::Put).await?;
        let r = self.inner.put_opts(location, payload, opts).await;
        self.control.after(OpKind::Put, lose, r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let lose = self.control.before(OpKind::Put).await?;
        let r = self.inner.put_multipart_opts(location, opts).await;
        let inner = self.control.after(OpKind::Put, lose, r)?;
        Ok(Box::new(FaultyUpload { inner, control: self.control.clone() }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let kind = if options.head { OpKind::Head } else { OpKind::Get };
        let lose = self.control.before(kind).await?;
        let r = self.inner.get_opts(location, options).await;
        self.control.after(kind, lose, r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        // One request per key here (the backend may batch them): each can fail on its own.
        let inner = self.inner.clone();
        let control = self.control.clone();
        locations
            .then(move |loc| {
                let (inner, control) = (inner.clone(), control.clone());
                async move {
                    let loc = loc?;
                    let lose = control.before(OpKind::Delete).await?;
                    let r = inner.delete_stream(stream::once(async { Ok(loc) }).boxed()).next().await;
                    let r = r.unwrap_or_else(|| {
                        Err(object_store::Error::Generic {
                            store: STORE,
                            source: "delete_stream yielded nothing".into(),
                        })
                    });
                    control.after(OpKind::Delete, lose, r)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        faulty_listing(self.control.clone(), self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        faulty_listing(self.control.clone(), self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let lose = self.control.before(OpKind::List).await?;
        let r = self.inner.list_with_delimiter(prefix).await;
        self.control.after(OpKind::List, lose, r)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let lose = self.control.before(OpKind::Copy).await?;
        let r = self.inner.copy_opts(from, to, options).await;
        self.control.after(OpKind::Copy, lose, r)
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let lose = self.control.before(OpKind::Copy).await?;
        let r = self.inner.rename_opts(from, to, options).await;
        self.control.after(OpKind::Copy, lose, r)
    }
}

/// A listing fails (or not) as a whole, when it is first polled.
fn faulty_listing(
    control: FaultControl,
    inner: BoxStream<'static, object_store::Result<ObjectMeta>>,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    stream::once(async move {
        match control.before(OpKind::List).await {
            Ok(false) => inner,
            // A lost reply of a listing is a listing that failed: nothing was changed.
            Ok(true) => {
                let e = control.after(OpKind::List, true, Ok(())).unwrap_err();
                stream::once(async move { Err(e) }).boxed()
            }
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    })
    .flatten()
    .boxed()
}

#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    control: FaultControl,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        // The part is sent when the returned future is polled; decide its fate first.
        let control = self.control.clone();
        let fut = self.inner.put_part(data);
        Box::pin(async move {
            let lose = control.before(OpKind::Put).await?;
            let r = fut.await;
            control.after(OpKind::Put, lose, r)
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let lose = self.control.before(OpKind::Put).await?;
        let r = self.inner.complete().await;
        self.control.after(OpKind::Put, lose, r)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let lose = self.control.before(OpKind::Delete).await?;
        let r = self.inner.abort().await;
        self.control.after(OpKind::Delete, lose, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[test]
    fn parses_the_documented_example() {
        let p = parse_spec(
            "put.error=2%,get+head.latency=15ms,jitter=5ms,outage-file=/tmp/slatefs-down",
        )
        .unwrap();
        assert!((p.op(OpKind::Put).error - 0.02).abs() < 1e-12);
        assert_eq!(p.op(OpKind::Get).error, 0.0);
        assert_eq!(p.op(OpKind::Get).latency, Duration::from_millis(15));
        assert_eq!(p.op(OpKind::Head).latency, Duration::from_millis(15));
        assert_eq!(p.op(OpKind::Put).latency, Duration::ZERO);
        for k in OP_KINDS {
            assert_eq!(p.op(k).jitter, Duration::from_millis(5));
        }
        assert_eq!(p.outage_file.as_deref(), Some(std::path::Path::new("/tmp/slatefs-down")));
        assert!(!p.outage);

        let p = parse_spec("all.timeout=0.1, hang=2s, outage=on, outage-mode=hang, seed=7").unwrap();
        assert_eq!(p.op(OpKind::Delete).timeout, 0.1);
        assert_eq!(p.hang, Duration::from_secs(2));
        assert!(p.outage);
        assert_eq!(p.outage_mode, OutageMode::Hang);
        assert_eq!(p.seed, Some(7));
        assert_eq!(parse_spec("").unwrap(), FaultPlan::default());
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "error",
            "error=2",
            "error=-0.1",
            "fetch.error=0.1",
            "put.explode=1",
            "latency=fast",
            "error=0.6,reset=0.6",
            "outage=maybe",
            "outage-mode=sometimes",
            "seed=x",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[tokio::test]
    async fn injects_per_kind_and_toggles_outages() {
        let base: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let control = FaultControl::new(parse_spec("put.error=1").unwrap());
        let s = FaultInjector::new(base.clone(), control.clone());
        let p = Path::from("k");
        let e = s.put(&p, PutPayload::from_static(b"x")).await.unwrap_err();
        assert!(e.to_string().contains("503"), "{e}");
        assert!(base.head(&p).await.is_err(), "a failed put must not be applied");
        base.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"x"));

        // Lost reply: applied, but the caller sees an error.
        control.set_plan(parse_spec("put.lost-reply=1").unwrap());
        let q = Path::from("q");
        assert!(s.put(&q, PutPayload::from_static(b"y")).await.is_err());
        assert!(base.head(&q).await.is_ok());

        control.set_plan(FaultPlan::default());
        control.set_outage(true);
        assert!(s.get(&p).await.is_err());
        assert!(s.list(None).try_collect::<Vec<_>>().await.is_err());
        assert!(s.delete(&p).await.is_err());
        control.set_outage(false);
        assert_eq!(s.list(None).try_collect::<Vec<_>>().await.unwrap().len(), 2);
        s.delete(&p).await.unwrap();
        let inj = control.injected();
        assert_eq!((inj.errors, inj.lost_replies, inj.outage_failures), (1, 1, 3));
    }

    #[tokio::test]
    async fn outage_file_and_hang_mode() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("down");
        let spec = format!("outage-file={},outage-mode=hang,hang=300ms", flag.display());
        let control = FaultControl::new(parse_spec(&spec).unwrap());
        let s = Arc::new(FaultInjector::new(Arc::new(InMemory::new()), control.clone()));
        let p = Path::from("k");
        s.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        std::fs::write(&flag, b"").unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await; // past the file check cache
        let t = Instant::now();
        assert!(s.get(&p).await.is_err());
        assert!(t.elapsed() >= Duration::from_millis(300));
        // A request made during the outage proceeds once the file is gone.
        let s2 = s.clone();
        let waiting = tokio::spawn(async move { s2.get(&Path::from("k")).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::remove_file(&flag).unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(control.injected().outage_failures, 1);
    }
}
