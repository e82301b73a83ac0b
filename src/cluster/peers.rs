//! Clients of other servers' internal channels: one lazily connected HTTP/2 channel per
//! address, with keep-alive pings so that a peer that vanishes without a reset is noticed
//! within seconds, and the cluster secret on every call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::proto::cluster_client::ClusterClient;
use super::proto::{PingRequest, PingReply};
use super::records::Member;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `Ping` may take before the peer counts as not answering.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Secret(MetadataValue<Ascii>);

impl Secret {
    pub fn new(secret: &[u8; 32]) -> Secret {
        let text = format!("Bearer {}", hex(secret));
        Secret(text.parse().expect("hex is ASCII"))
    }

    /// Constant-time check of a call's `authorization` metadata.
    pub fn admits(&self, got: Option<&MetadataValue<Ascii>>) -> bool {
        let Some(got) = got else { return false };
        let (a, b) = (self.0.as_bytes(), got.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Interceptor for Secret {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Client = ClusterClient<InterceptedService<Channel, Secret>>;

pub struct Peers {
    secret: Secret,
    me: String,
    clients: Mutex<HashMap<String, Client>>,
}

/// How a peer answered a liveness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The incarnation the record names answers.
    Alive,
    /// Nothing listens, or another incarnation answers: the process the record names is gone.
    Gone,
    /// No answer in time (machine down, partition, overload).
    Silent,
    /// It refused our secret: the servers are configured with different secrets.
    Refused,
}

impl Peers {
    pub fn new(secret: Secret, me: String) -> Peers {
        Peers { secret, me, clients: Mutex::new(HashMap::new()) }
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    pub fn client(&self, address: &str) -> Result<Client, Status> {
        let mut clients = self.clients.lock().expect("peer map lock");
        if let Some(c) = clients.get(address) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Status::invalid_argument(format!("peer address {address:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let client = ClusterClient::with_interceptor(endpoint.connect_lazy(), self.secret.clone())
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20);
        clients.insert(address.to_string(), client.clone());
        Ok(client)
    }

    /// Whether the process `member` names is still there.
    pub async fn liveness(&self, member: &Member) -> Liveness {
        let mut last = Liveness::Silent;
        for _ in 0..2 {
            last = match self.ping(&member.address).await {
                Ok(reply) if reply.incarnation == member.incarnation && reply.name == member.name => return Liveness::Alive,
                Ok(_) => return Liveness::Gone,
                Err(s) if s.code() == Code::Unauthenticated => return Liveness::Refused,
                Err(s) if is_refused(&s) => return Liveness::Gone,
                Err(_) => Liveness::Silent,
            };
        }
        last
    }

    pub async fn ping(&self, address: &str) -> Result<PingReply, Status> {
        let mut client = self.client(address)?;
        let mut req = Request::new(PingRequest { from: self.me.clone() });
        req.set_timeout(PING_TIMEOUT);
        match tokio::time::timeout(PING_TIMEOUT, client.ping(req)).await {
            Ok(r) => r.map(|r| r.into_inner()),
            Err(_) => Err(Status::deadline_exceeded("no answer to ping")),
        }
    }
}

/// Whether a transport error says nothing listens at the address (as opposed to a slow peer).
pub fn is_refused(s: &Status) -> bool {
    if s.code() != Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
            );
        }
        source = e.source();
    }
    let msg = s.message().to_ascii_lowercase();
    msg.contains("connection refused") || msg.contains("connection reset")
}
