//! A request's bytes: the request line, `Host`, the generator's own headers, `Content-Length`
//! and the body, refusing a drawn value that would break the request line or smuggle a header.

use http::Method;

use crate::load::{Compiled, Drawn, Entry};

/// Writes the request for `drawn` into `out`: the request line, `Host`, the generator's own
/// headers (as recorded in [`crate::record::RequestRecord::request_headers`]), `Content-Length` and the body.
pub(super) fn encode(
    plan: &Compiled,
    entry: &Entry,
    drawn: &Drawn,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // Placeholder values are the scenario's to choose; one that would break the request line
    // fails this request instead of sending something else.
    let valid = |p: &str| p.bytes().all(|b| b > b' ' && b != 0x7f && b != b'#');
    if !valid(&plan.prefix) || !valid(&drawn.path) {
        return Err(format!(
            "invalid path {:?}: a path cannot hold spaces, control characters or `#`",
            drawn.path
        ));
    }
    out.clear();
    out.extend_from_slice(entry.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(plan.prefix.as_bytes());
    out.extend_from_slice(drawn.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(plan.host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if drawn.body.is_some() {
        out.extend_from_slice(b"content-type: application/json\r\n");
    }
    if let Some(key) = &drawn.key {
        out.extend_from_slice(b"idempotency-key: ");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &drawn.headers {
        // A value drawn from a list or captured from an answer could hold a line break, which
        // would smuggle a header or a second request: fail this request instead.
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(format!(
                "invalid value {value:?} for header `{name}`: control characters"
            ));
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body = drawn.body.as_deref().unwrap_or("");
    // A request with a body, or a method that usually has one, says how long it is; a GET
    // without a body says nothing, as hyper does.
    if !body.is_empty() || ![Method::GET, Method::HEAD, Method::DELETE].contains(&entry.method) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    Ok(())
}
