//! Starting and stopping the servers under test: slatefs, nfs-ganesha (with rpcbind) and ZeroFS.

use crate::client::Endpoint;
use anyhow::{anyhow, bail, Context, Result};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Finds an executable by absolute path or on PATH.
pub fn which(bin: &str) -> Option<PathBuf> {
    let p = Path::new(bin);
    if p.is_absolute() || bin.contains('/') {
        return p.is_file().then(|| p.to_path_buf());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(bin)).find(|c| c.is_file())
}

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Result<Proc> {
        let f = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone()?))
            .stderr(Stdio::from(f))
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Proc { name: name.into(), child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until `port` accepts TCP connections, failing early if the process exits.
    pub fn wait_port(&mut self, port: u16, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("{} exited ({st}) during start-up:\n{}", self.name, self.log_tail());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not listen on {port} within {wait:?}:\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Slatefs {
    pub proc: Proc,
    pub ep: Endpoint,
    pub admin: String,
}

/// Extra `[storage]` lines for every slatefs server, on local stores and S3 (`--slatefs-storage`).
pub static SLATEFS_STORAGE_EXTRA: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn start_slatefs(bin: &Path, dir: &Path, durability: &str) -> Result<Slatefs> {
    start_slatefs_on(bin, dir, durability, None)
}

/// `storage`: the store URL and a config file body with its `[storage]` section (S3), or None
/// for a local store in `dir/store`.
pub fn start_slatefs_on(bin: &Path, dir: &Path, durability: &str, storage: Option<(&str, &str)>) -> Result<Slatefs> {
    std::fs::create_dir_all(dir)?;
    let port = free_port();
    let admin = format!("unix://{}", dir.join("admin.sock").display());
    let mut cmd = Command::new(bin);
    cmd.arg("serve");
    match storage {
        Some((url, config)) => {
            let conf = dir.join("config.toml");
            let extra = SLATEFS_STORAGE_EXTRA.get().map(String::as_str).unwrap_or("");
            std::fs::write(&conf, config.replacen("[storage]\n", &format!("[storage]\n{extra}\n"), 1))?;
            cmd.arg("-c").arg(conf).arg("--store").arg(url);
        }
        None => {
            let conf = dir.join("config.toml");
            let extra = SLATEFS_STORAGE_EXTRA.get().map(String::as_str).unwrap_or("");
            std::fs::write(&conf, format!("[storage]\n{extra}\n"))?;
            cmd.arg("-c").arg(conf).arg("--store").arg(format!("file://{}", dir.join("store").display()));
        }
    }
    cmd.arg("--nfs-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(&admin)
        .arg("--durability")
        .arg(durability)
        .env("RUST_LOG", "warn");
    let mut proc = Proc::spawn(&format!("slatefs-{durability}"), &mut cmd, dir.join("serve.log"))?;
    proc.wait_port(port, Duration::from_secs(60))?;
    // The admin socket appears with the listeners.
    let sock = dir.join("admin.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Slatefs { proc, ep: Endpoint { nfs_port: port, mount_port: port, export: "/".into() }, admin })
}

/// Whether this process is in a private network namespace with nothing but `lo`.
pub fn in_private_netns() -> bool {
    // /proc/self/net/dev is per network namespace (/sys/class/net is not, unless remounted).
    let s = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    let names: Vec<&str> = s.lines().skip(2).filter_map(|l| l.split(':').next()).map(|n| n.trim()).collect();
    names == ["lo"]
}

pub struct Ganesha {
    pub _rpcbind: Proc,
    pub proc: Proc,
    pub ep: Endpoint,
}

/// nfs-ganesha with the VFS FSAL exporting `dir/export` as `/export`; rpcbind first. Only in a
/// private network + mount namespace (scripts/bench.sh sets one up, with a tmpfs on /run).
pub fn start_ganesha(bin: &Path, dir: &Path) -> Result<Ganesha> {
    if !in_private_netns() {
        bail!("needs a private network namespace (run through scripts/bench.sh)");
    }
    let rpcbind = which("rpcbind").ok_or_else(|| anyhow!("rpcbind not installed"))?;
    std::fs::create_dir_all(dir.join("export"))?;
    std::fs::create_dir_all("/run/rpcbind")?;
    std::fs::create_dir_all("/run/ganesha")?;
    let _ = std::fs::create_dir_all("/var/lib/nfs/ganesha");
    let mut rpcb = Proc::spawn("rpcbind", Command::new(rpcbind).args(["-f", "-w"]), dir.join("rpcbind.log"))?;
    rpcb.wait_port(111, Duration::from_secs(10))?;
    let (nfs_port, mount_port) = (free_port(), free_port());
    let conf = dir.join("ganesha.conf");
    std::fs::write(
        &conf,
        format!(
            r#"NFS_CORE_PARAM {{
    NFS_Port = {nfs_port};
    MNT_Port = {mount_port};
    NLM_Port = {nlm};
    Rquota_Port = {rq};
    Protocols = 3;
    Enable_NLM = false;
    Enable_RQUOTA = false;
}}
NFSV4 {{
    Graceless = true;
}}
EXPORT_DEFAULTS {{
    Access_Type = RW;
}}
EXPORT {{
    Export_Id = 1;
    Path = "{path}";
    Pseudo = "/export";
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL {{
        Name = VFS;
    }}
}}
LOG {{
    Default_Log_Level = WARN;
}}
"#,
            nlm = free_port(),
            rq = free_port(),
            path = dir.join("export").display()
        ),
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg("-F")
        .arg("-L")
        .arg(dir.join("ganesha.log"))
        .arg("-f")
        .arg(&conf)
        .arg("-p")
        .arg(dir.join("ganesha.pid"))
        .arg("-N")
        .arg("NIV_WARN");
    let mut proc = Proc::spawn("ganesha", &mut cmd, dir.join("ganesha.stdout"))?;
    proc.log = dir.join("ganesha.log");
    proc.wait_port(nfs_port, Duration::from_secs(60))?;
    // NFSv3 clients mount the export's Path (Pseudo is the NFSv4 name).
    let export = dir.join("export").display().to_string();
    Ok(Ganesha { _rpcbind: rpcb, proc, ep: Endpoint { nfs_port, mount_port, export } })
}

pub struct Zerofs {
    pub proc: Proc,
    pub ep: Endpoint,
}

/// ZeroFS with its local file backend in `dir/data`, only its NFS server, on 127.0.0.1.
pub fn start_zerofs(bin: &Path, dir: &Path) -> Result<Zerofs> {
    let storage = format!("[storage]\nurl = \"file://{}\"\nencryption_password = \"nfsbench-password\"\n", dir.join("data").display());
    start_zerofs_on(bin, dir, &storage, 1.0)
}

/// ZeroFS with the given `[storage]` (and `[aws]`) sections and a disk cache of `cache_gb`.
pub fn start_zerofs_on(bin: &Path, dir: &Path, storage: &str, cache_gb: f64) -> Result<Zerofs> {
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::create_dir_all(dir.join("cache"))?;
    let port = free_port();
    let conf = dir.join("zerofs.toml");
    std::fs::write(
        &conf,
        format!(
            r#"[cache]
dir = "{cache}"
disk_size_gb = {cache_gb:.2}
memory_size_gb = 0.25

[servers.nfs]
addresses = ["127.0.0.1:{port}"]

{storage}"#,
            cache = dir.join("cache").display(),
        ),
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg("run").arg("-c").arg(&conf).env("RUST_LOG", "warn");
    let mut proc = Proc::spawn("zerofs", &mut cmd, dir.join("zerofs.log"))?;
    proc.wait_port(port, Duration::from_secs(120))?;
    Ok(Zerofs { proc, ep: Endpoint { nfs_port: port, mount_port: port, export: "/".into() } })
}

/// Resident set size of a process in bytes (VmRSS in /proc/PID/status).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:").map(|kb| kb * 1024)
}

/// The highest resident set size the process has had, in bytes (VmHWM).
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:").map(|kb| kb * 1024)
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s.lines().find(|l| l.starts_with(field)).ok_or_else(|| anyhow!("no {field}"))?;
    Ok(line.split_whitespace().nth(1).ok_or_else(|| anyhow!("bad {field}"))?.parse()?)
}
