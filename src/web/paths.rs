//! Paths in URLs: a dataset reference (`NAME` or `NAME@SNAP`) and a file path inside it, both
//! taken from the raw request path and decoded segment by segment, so that nothing a client
//! encodes (`%2F`, `%00`, `%2e%2e`) can name anything outside the dataset.

use super::error::{ApiError, ApiResult};

/// A file path inside a dataset: its names from the root down (empty: the root).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatasetPath {
    pub names: Vec<Vec<u8>>,
}

impl DatasetPath {
    /// Parses the raw (still percent-encoded) path after `/files`: `""`, `"/"`, `"/a/b"`,
    /// `"/a/b/"`. Refuses `.`, `..`, empty segments in the middle, `/` or NUL inside a
    /// segment, and malformed percent-encoding.
    pub fn parse_raw(raw: &str) -> ApiResult<DatasetPath> {
        let trimmed = raw.strip_prefix('/').unwrap_or(raw);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Ok(DatasetPath::default());
        }
        let names = trimmed.split('/').map(decode_segment).collect::<ApiResult<Vec<_>>>()?;
        DatasetPath::from_names(names)
    }

    /// A path given in a JSON body (already decoded text): `/a/b` or `a/b`.
    pub fn parse_plain(text: &str) -> ApiResult<DatasetPath> {
        if text.contains('\0') {
            return Err(ApiError::bad_request("path contains NUL"));
        }
        let trimmed = text.trim_start_matches('/');
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Ok(DatasetPath::default());
        }
        DatasetPath::from_names(trimmed.split('/').map(|s| s.as_bytes().to_vec()).collect())
    }

    fn from_names(names: Vec<Vec<u8>>) -> ApiResult<DatasetPath> {
        for n in &names {
            check_name(n)?;
        }
        Ok(DatasetPath { names })
    }

    pub fn is_root(&self) -> bool {
        self.names.is_empty()
    }

    /// The parent path and the last name (`None` for the root).
    pub fn split_last(&self) -> Option<(DatasetPath, &[u8])> {
        let (last, parent) = self.names.split_last()?;
        Some((DatasetPath { names: parent.to_vec() }, last))
    }

    pub fn child(&self, name: &[u8]) -> DatasetPath {
        let mut names = self.names.clone();
        names.push(name.to_vec());
        DatasetPath { names }
    }

    /// `/a/b` for messages and JSON (names that are not UTF-8 shown lossily).
    pub fn display(&self) -> String {
        if self.names.is_empty() {
            return "/".to_string();
        }
        self.names.iter().map(|n| format!("/{}", String::from_utf8_lossy(n))).collect()
    }
}

fn check_name(n: &[u8]) -> ApiResult<()> {
    if n.is_empty() {
        return Err(ApiError::bad_request("path has an empty segment (//)"));
    }
    if n == b"." || n == b".." {
        return Err(ApiError::bad_request("path segments '.' and '..' are refused"));
    }
    if n.contains(&b'/') {
        return Err(ApiError::bad_request("path segment contains an encoded '/'"));
    }
    if n.contains(&0) {
        return Err(ApiError::bad_request("path contains NUL"));
    }
    if n.len() > crate::fs::MAX_NAME_LEN {
        return Err(ApiError::bad_request("path segment longer than 255 bytes"));
    }
    Ok(())
}

/// Strict percent-decoding: `%` must be followed by two hex digits.
fn decode_segment(s: &str) -> ApiResult<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            match v {
                Some(v) if hex.is_some_and(|h| h.bytes().all(|c| c.is_ascii_hexdigit())) => out.push(v),
                _ => return Err(ApiError::bad_request("malformed percent-encoding in path")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Percent-encodes one name for a URL path segment (the `href` of listings).
pub fn encode_segment(name: &[u8]) -> String {
    use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encode(name, KEEP).to_string()
}

/// What `{ref}` in `/datasets/{ref}/…` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRef {
    pub dataset: String,
    pub snapshot: Option<String>,
}

impl DatasetRef {
    /// `NAME` or `NAME@SNAP`, percent-decoded (a browser may send `@` as `%40`). The names'
    /// own rules are the catalog's (checked when they are looked up).
    pub fn parse_raw(raw: &str) -> ApiResult<DatasetRef> {
        let bytes = decode_segment(raw)?;
        let text = String::from_utf8(bytes).map_err(|_| ApiError::bad_request("dataset name is not UTF-8"))?;
        if text.is_empty() {
            return Err(ApiError::bad_request("dataset name is empty"));
        }
        Ok(match text.split_once('@') {
            Some((d, s)) => DatasetRef { dataset: d.to_string(), snapshot: Some(s.to_string()) },
            None => DatasetRef { dataset: text, snapshot: None },
        })
    }

    /// The export path the registry resolves (`NAME` or `NAME@SNAP`).
    pub fn export(&self) -> String {
        match &self.snapshot {
            Some(s) => format!("{}@{s}", self.dataset),
            None => self.dataset.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths() {
        assert!(DatasetPath::parse_raw("").unwrap().is_root());
        assert!(DatasetPath::parse_raw("/").unwrap().is_root());
        let p = DatasetPath::parse_raw("/a%20b/c%C3%A9/").unwrap();
        assert_eq!(p.names, vec![b"a b".to_vec(), "cé".as_bytes().to_vec()]);
        assert_eq!(DatasetPath::parse_raw("/%ff").unwrap().names, vec![vec![0xff]]);
        for bad in ["/..", "/a/../b", "/a/%2e%2E", "/.", "/a%2Fb", "/a%2fb", "/a%00", "/a//b", "/a%zz", "/a%4", "/%"] {
            let e = DatasetPath::parse_raw(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn plain_paths_and_refs() {
        assert_eq!(DatasetPath::parse_plain("/a/b").unwrap().display(), "/a/b");
        assert!(DatasetPath::parse_plain("a/../b").is_err());
        assert!(DatasetPath::parse_plain("a\0b").is_err());
        let r = DatasetRef::parse_raw("root%40monday").unwrap();
        assert_eq!((r.dataset.as_str(), r.snapshot.as_deref()), ("root", Some("monday")));
        assert_eq!(DatasetRef::parse_raw("root").unwrap().export(), "root");
        assert_eq!(encode_segment(b"a b/%"), "a%20b%2F%25");
    }
}
