//! API errors: a status and the message the CLI would print, sent as `{"error": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::catalog::CatalogError;
use crate::fs::FsError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// An engine error about `path`, with the path in the message.
    pub fn fs(path: &str, e: FsError) -> ApiError {
        let mut err = ApiError::from(e);
        err.message = format!("{path}: {}", err.message);
        err
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let status = match &e {
            CatalogError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            CatalogError::NotFound(_) => StatusCode::NOT_FOUND,
            CatalogError::AlreadyExists(_) | CatalogError::FailedPrecondition(_) => StatusCode::CONFLICT,
            CatalogError::ResourceExhausted(_) => StatusCode::INSUFFICIENT_STORAGE,
            CatalogError::Unavailable(_) | CatalogError::StoreUnreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
            CatalogError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<FsError> for ApiError {
    fn from(e: FsError) -> Self {
        let status = match &e {
            FsError::NotFound | FsError::Stale => StatusCode::NOT_FOUND,
            FsError::Exists | FsError::NotDir | FsError::IsDir | FsError::NotEmpty | FsError::ReadOnly => {
                StatusCode::CONFLICT
            }
            FsError::Access | FsError::Perm => StatusCode::FORBIDDEN,
            FsError::NameTooLong | FsError::Invalid(_) | FsError::TooBig => StatusCode::BAD_REQUEST,
            FsError::NoSpace | FsError::StoreFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            FsError::Unavailable(_) | FsError::Fenced => StatusCode::SERVICE_UNAVAILABLE,
            FsError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// The admin operations' own errors (the policy RPCs the console calls as the CLI does).
impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let status = match s.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::INSUFFICIENT_STORAGE,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, s.message())
    }
}
