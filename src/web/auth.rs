//! Who may call the API: bearer tokens for scripts, cookie sessions with a CSRF token for the
//! page (docs/web.md, "Authentication and CSRF").

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::http::{header, HeaderMap, Method, StatusCode};

use super::error::{ApiError, ApiResult};

pub const SESSION_COOKIE: &str = "slatefs_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const MAX_SESSIONS: usize = 1024;
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Admin,
    Readonly,
}

/// The tokens read at start-up (`[web] token_file`, `readonly_token_file`).
#[derive(Clone)]
pub struct Tokens {
    admin: String,
    readonly: Option<String>,
}

impl Tokens {
    /// Reads both files; each must be private to its owner (mode 0600) and not empty, and the
    /// two tokens must differ (one token cannot mean both).
    pub fn load(token_file: &Path, readonly_file: Option<&Path>) -> Result<Tokens> {
        let admin = read_token(token_file, "web token file")?;
        let readonly = readonly_file.map(|p| read_token(p, "web read-only token file")).transpose()?;
        if readonly.as_deref() == Some(admin.as_str()) {
            bail!("web.token_file and web.readonly_token_file hold the same token");
        }
        Ok(Tokens { admin, readonly })
    }

    pub fn access_of(&self, token: &str) -> Option<Access> {
        if same(token, &self.admin) {
            return Some(Access::Admin);
        }
        match &self.readonly {
            Some(r) if same(token, r) => Some(Access::Readonly),
            _ => None,
        }
    }
}

fn read_token(path: &Path, what: &str) -> Result<String> {
    crate::admin::tls::check_private(path, what)?;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} {}", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        bail!("the {what} {} is empty", path.display());
    }
    Ok(token)
}

/// Compares digests, so neither the length nor the first differing byte leaks through timing.
fn same(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Session {
    access: Access,
    csrf: String,
    last_used: Instant,
}

/// Cookie sessions, in memory: a restart logs every page out.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub access: Access,
    pub csrf_token: String,
}

impl Sessions {
    /// A new session; returns its id (the cookie) and what the page needs.
    pub fn create(&self, access: Access) -> (String, SessionInfo) {
        let id = random_hex();
        let csrf = random_hex();
        let mut all = self.by_id.lock().unwrap();
        let now = Instant::now();
        all.retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        if all.len() >= MAX_SESSIONS {
            if let Some(oldest) = all.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone()) {
                all.remove(&oldest);
            }
        }
        all.insert(id.clone(), Session { access, csrf: csrf.clone(), last_used: now });
        (id, SessionInfo { access, csrf_token: csrf })
    }

    fn get(&self, id: &str) -> Option<SessionInfo> {
        let mut all = self.by_id.lock().unwrap();
        let s = all.get_mut(id)?;
        if s.last_used.elapsed() >= SESSION_IDLE {
            all.remove(id);
            return None;
        }
        s.last_used = Instant::now();
        Some(SessionInfo { access: s.access, csrf_token: s.csrf.clone() })
    }

    pub fn remove(&self, id: &str) {
        self.by_id.lock().unwrap().remove(id);
    }
}

/// How a request was authenticated.
#[derive(Debug, Clone)]
pub enum Caller {
    Bearer(Access),
    Session { id: String, info: SessionInfo },
}

impl Caller {
    pub fn access(&self) -> Access {
        match self {
            Caller::Bearer(a) => *a,
            Caller::Session { info, .. } => info.access,
        }
    }
}

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == SESSION_COOKIE && !v.is_empty() {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

/// Authenticates a request and applies the rules for state-changing methods: a read-only
/// token may not change anything, and a cookie session must send its CSRF token.
/// `any_access` lets a read-only caller through (logging out).
pub fn authorize(
    tokens: &Tokens,
    sessions: &Sessions,
    method: &Method,
    headers: &HeaderMap,
    any_access: bool,
) -> ApiResult<Caller> {
    let caller = if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
        let access = tokens
            .access_of(token)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "wrong token (Authorization: Bearer <token>)"))?;
        Caller::Bearer(access)
    } else if let Some(id) = session_cookie(headers) {
        let info = sessions
            .get(&id)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the session has ended: log in again"))?;
        Caller::Session { id, info }
    } else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required: log in, or send Authorization: Bearer <token>",
        ));
    };
    let changes = !matches!(*method, Method::GET | Method::HEAD);
    if !changes {
        return Ok(caller);
    }
    if let Caller::Session { info, .. } = &caller {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if sent.is_empty() || !same(sent, &info.csrf_token) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "missing or wrong CSRF token (X-CSRF-Token)"));
        }
    }
    if !any_access && caller.access() == Access::Readonly {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this token may only read (readonly_token_file)"));
    }
    Ok(caller)
}
