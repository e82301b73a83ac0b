//! The web console and its JSON API (docs/web.md): an axum listener beside the admin API,
//! calling the same `Registry` (catalog operations) and `Filesystem` (files) as the admin
//! server and the NFS adapter. Off unless `[web] listen` is set.
//!
//! By concern: `auth` (tokens, sessions, CSRF), `paths` (URL paths), `api` (datasets and
//! snapshots), `policy` (snapshot policies), `files` (browse and download), `tar` (directory
//! streams), `diff`, `restore`, `page` (the embedded single page).

mod api;
mod auth;
mod diff;
mod error;
mod files;
mod page;
mod paths;
mod policy;
mod restore;
mod tar;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;

use crate::catalog::Registry;
use crate::config::WebConfig;
pub use auth::Tokens;
use auth::{Caller, Sessions};
use error::{ApiError, ApiResult};

/// What every handler shares.
pub(crate) struct Web {
    registry: Arc<Registry>,
    tokens: Tokens,
    sessions: Sessions,
}

type AppState = Arc<Web>;

/// Reads and checks the token files of `[web]` (before the store is touched, like every
/// other refusal of `serve`). `None` when the console is off.
pub fn check(config: &WebConfig) -> Result<Option<Tokens>> {
    if config.listen.is_none() {
        return Ok(None);
    }
    let token_file = config.token_file.as_deref().context("web.listen needs web.token_file")?;
    Ok(Some(Tokens::load(token_file, config.readonly_token_file.as_deref())?))
}

/// A bound web listener, not yet serving.
pub struct WebListener {
    listener: tokio::net::TcpListener,
    tokens: Tokens,
}

impl WebListener {
    pub async fn bind(listen: &str, tokens: Tokens) -> Result<WebListener> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (web.listen)"))?;
        Ok(WebListener { listener, tokens })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub async fn run(self, registry: Arc<Registry>, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let web = Arc::new(Web { registry, tokens: self.tokens, sessions: Sessions::default() });
        tracing::info!("web console listening on http://{}", self.listener.local_addr()?);
        axum::serve(self.listener, router(web)).with_graceful_shutdown(shutdown).await?;
        Ok(())
    }
}

fn router(web: AppState) -> Router {
    let protected = Router::new()
        .route("/api/v1/session", get(session))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/datasets", get(api::list_datasets))
        .route("/api/v1/datasets/{name}", get(api::get_dataset))
        .route("/api/v1/datasets/{name}/quota", post(api::set_quota))
        .route("/api/v1/datasets/{name}/clone", post(api::clone))
        .route("/api/v1/datasets/{name}/policy", get(policy::get).put(policy::set).delete(policy::clear))
        .route("/api/v1/datasets/{name}/policy/pause", post(policy::pause))
        .route("/api/v1/datasets/{name}/snapshots", get(api::list_snapshots).post(api::create_snapshot))
        .route("/api/v1/datasets/{name}/snapshots/{snap}", delete(api::delete_snapshot))
        .route("/api/v1/datasets/{name}/files", get(files::get))
        .route("/api/v1/datasets/{name}/files/", get(files::get))
        .route("/api/v1/datasets/{name}/files/{*path}", get(files::get))
        .route("/api/v1/datasets/{name}/diff", get(diff::get))
        .route("/api/v1/datasets/{name}/restore", post(restore::post))
        .route_layer(middleware::from_fn_with_state(web.clone(), require_auth));
    Router::new()
        .merge(protected)
        .route("/api/v1/login", post(login))
        .merge(page::routes())
        .fallback(|| async { ApiError::not_found("no such page or API call") })
        .with_state(web)
}

async fn require_auth(State(web): State<AppState>, mut req: Request, next: Next) -> Response {
    let logout = req.uri().path() == "/api/v1/logout";
    match auth::authorize(&web.tokens, &web.sessions, req.method(), req.headers(), logout) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Parses a JSON body, answering 400 with serde's message when it does not fit.
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

/// The query string as (key, value) pairs.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect()
}

fn query_flag(pairs: &[(String, String)], key: &str) -> bool {
    pairs.iter().any(|(k, v)| k == key && matches!(v.as_str(), "1" | "true" | "yes" | ""))
}

#[derive(serde::Deserialize)]
struct LoginBody {
    token: String,
}

async fn login(State(web): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let LoginBody { token } = parse_body(&body)?;
    let access = web
        .tokens
        .access_of(token.trim())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "wrong token"))?;
    let (id, info) = web.sessions.create(access);
    let cookie = format!("{}={id}; HttpOnly; SameSite=Strict; Path=/", auth::SESSION_COOKIE);
    let mut resp = Json(info).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
    Ok(resp)
}

async fn session(axum::Extension(caller): axum::Extension<Caller>) -> ApiResult<Response> {
    match caller {
        Caller::Session { info, .. } => Ok(Json(info).into_response()),
        Caller::Bearer(access) => Ok(Json(serde_json::json!({ "access": access })).into_response()),
    }
}

async fn logout(State(web): State<AppState>, axum::Extension(caller): axum::Extension<Caller>) -> Response {
    if let Caller::Session { id, .. } = &caller {
        web.sessions.remove(id);
    }
    let cookie = format!("{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0", auth::SESSION_COOKIE);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
    resp
}
