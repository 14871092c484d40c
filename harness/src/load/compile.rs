//! A [`LoadPlan`] checked and compiled: the base URL resolved to where to connect, and each
//! [`MixEntry`] turned into an [`Entry`] whose path, body and headers are lists of [`Piece`]s
//! (text and placeholders), so that filling a request in is a walk over the pieces with no
//! parsing left. Capture pools are linked here too: each `captured` param to the entries that
//! fill its pool.

use std::net::IpAddr;
use std::time::Duration;

use http::uri::Scheme;
use http::{Method, Uri};

use super::plan::{LoadError, LoadPlan, MixEntry, Param};
use super::wire;

// ---------------------------------------------------------------------------------------------
// The plan, checked and compiled.

pub(super) struct Compiled {
    /// Where to connect.
    pub(super) dest: wire::Dest,
    /// The `Host` header: the base URL's authority.
    pub(super) host: String,
    /// A path prefix from the base URL (usually empty).
    pub(super) prefix: String,
    pub(super) rate: f64,
    pub(super) duration: Option<Duration>,
    pub(super) requests: Option<u64>,
    pub(super) timeout: Duration,
    pub(super) seed: u64,
    pub(super) max_in_flight: u64,
    pub(super) detail: crate::record::RecordDetail,
    /// The request-id header to note on every answer, lower case.
    pub(super) request_id_header: String,
    pub(super) entries: Vec<Entry>,
    /// Cumulative weights, for a weighted draw with one random number.
    pub(super) cumulative: Vec<u64>,
    /// Capture pool names; [`Entry::captures`] and drawn params index into it.
    pub(super) pools: Vec<String>,
}

pub(super) struct Entry {
    /// The request line as written: the record's `route`.
    pub(super) line: String,
    /// The same, shared by every record of this entry.
    pub(super) route: crate::record::Route,
    pub(super) method: Method,
    pub(super) path: Vec<Piece>,
    pub(super) body: Option<Vec<Piece>>,
    /// In name order: the order values are drawn in.
    pub(super) params: Vec<(String, Param)>,
    pub(super) idempotency_key: bool,
    pub(super) retry_same_key: u32,
    /// Whether the body of a 2xx answer is kept (writes).
    pub(super) keep_success_body: bool,
    /// Header name and value template, in name order.
    pub(super) headers: Vec<(String, Vec<Piece>)>,
    /// What its 2xx answers give to later requests: a pool (by name until compiled, then the
    /// index into [`Compiled::pools`]) and the JSON pointer of the value. Only pools some
    /// request reads are kept, so an answer nobody needs is never parsed.
    pub(super) captures: Vec<(usize, String)>,
    pub(super) capture_names: Vec<(String, String)>,
}

pub(super) enum Piece {
    Text(String),
    /// An index into the entry's `params`.
    Param(usize),
    Seq,
    Uuid,
}

/// Resolves capture pools: every `captured` param must name a pool some entry fills; each
/// entry keeps the captures someone reads. Returns the pool names.
fn link_captures(entries: &mut [Entry]) -> Result<Vec<String>, LoadError> {
    let read = |p: &Param| match p {
        Param::Captured(pool) => Some(pool.clone()),
        _ => None,
    };
    let mut pools: Vec<String> = Vec::new();
    for e in entries.iter() {
        for (_, p) in &e.params {
            if let Some(pool) = read(p)
                && !pools.contains(&pool)
            {
                pools.push(pool);
            }
        }
    }
    for e in entries.iter() {
        for (_, p) in &e.params {
            if let Param::Captured(pool) = p
                && !entries
                    .iter()
                    .any(|x| x.capture_names.iter().any(|(n, _)| n == pool))
            {
                return Err(LoadError::BadRequest {
                    request: e.line.clone(),
                    reason: format!(
                        "no request captures `{pool}`; add capture = {{ {pool} = \"id\" }} to the request whose answer holds it"
                    ),
                });
            }
        }
    }
    for e in entries.iter_mut() {
        e.captures = e
            .capture_names
            .iter()
            .filter_map(|(name, field)| {
                let pool = pools.iter().position(|p| p == name)?;
                let pointer: String = field.split('.').map(|f| format!("/{f}")).collect();
                Some((pool, pointer))
            })
            .collect();
    }
    Ok(pools)
}

impl Compiled {
    pub(super) fn new(plan: &LoadPlan) -> Result<Compiled, LoadError> {
        let (dest, host, prefix) = parse_base_url(&plan.base_url)?;
        if !(plan.rate.is_finite() && plan.rate > 0.0) {
            return Err(LoadError::Invalid(format!(
                "the rate must be a positive number of requests per second, got {}",
                plan.rate
            )));
        }
        if plan.duration.is_none() && plan.requests.is_none() {
            return Err(LoadError::Invalid(
                "a load needs a bound: set `duration`, `requests`, or both".into(),
            ));
        }
        if plan.timeout.is_zero() {
            return Err(LoadError::Invalid("the timeout must be positive".into()));
        }
        if plan.max_in_flight == 0 {
            return Err(LoadError::Invalid(
                "max_in_flight must be at least 1".into(),
            ));
        }
        if plan.mix.is_empty() {
            return Err(LoadError::Invalid("the mix has no requests".into()));
        }
        let request_id_header = http::HeaderName::from_bytes(plan.request_id_header.as_bytes())
            .map_err(|_| {
                LoadError::Invalid(format!(
                    "`{}` is not a header name (request_id_header)",
                    plan.request_id_header
                ))
            })?;
        if wire::frames_answers(request_id_header.as_str()) {
            return Err(LoadError::Invalid(format!(
                "`{}` frames the answer; it cannot carry request ids (request_id_header)",
                plan.request_id_header
            )));
        }
        let mut entries = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for m in &plan.mix {
            if m.weight == 0 {
                return Err(LoadError::BadRequest {
                    request: m.request.clone(),
                    reason: "a weight of 0 is never sent; remove the entry instead".into(),
                });
            }
            total += u64::from(m.weight);
            cumulative.push(total);
            entries.push(Entry::new(m)?);
        }
        let pools = link_captures(&mut entries)?;
        Ok(Compiled {
            dest,
            host,
            prefix,
            rate: plan.rate,
            duration: plan.duration,
            requests: plan.requests,
            timeout: plan.timeout,
            seed: plan.seed,
            max_in_flight: plan.max_in_flight,
            detail: plan.detail,
            request_id_header: request_id_header.as_str().to_string(),
            entries,
            cumulative,
            pools,
        })
    }
}

fn parse_base_url(url: &str) -> Result<(wire::Dest, String, String), LoadError> {
    let bad = |reason: &str| LoadError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(bad("only http:// is supported"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip = host.parse::<IpAddr>().ok();
    let loopback = host.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(LoadError::NotLoopback(url.to_string()));
    }
    if uri.query().is_some() {
        return Err(bad("a base URL has no query"));
    }
    let port = authority.port_u16().unwrap_or(80);
    let dest = match ip {
        Some(ip) => wire::Dest::Addr(std::net::SocketAddr::new(ip, port)),
        None => wire::Dest::Name(host.to_string(), port),
    };
    let prefix = uri.path().trim_end_matches('/').to_string();
    Ok((dest, authority.as_str().to_string(), prefix))
}

impl Entry {
    pub(super) fn new(m: &MixEntry) -> Result<Entry, LoadError> {
        let bad = |reason: String| LoadError::BadRequest {
            request: m.request.clone(),
            reason,
        };
        let line = m.request.split_whitespace().collect::<Vec<_>>().join(" ");
        let (method, route) = line
            .split_once(' ')
            .ok_or_else(|| bad("write it as `METHOD /path`".into()))?;
        let method: Method = method
            .parse()
            .map_err(|_| bad(format!("`{method}` is not an HTTP method")))?;
        if !route.starts_with('/') {
            return Err(bad("the path must start with `/`".into()));
        }

        let params = m.params.clone();
        let body = m.body.clone();
        let idempotency_key = m.idempotency_key.unwrap_or(false);

        for (name, p) in &params {
            match p {
                Param::Uniform([low, high]) if low > high => {
                    return Err(bad(format!(
                        "`{name}`: uniform range [{low}, {high}] is empty"
                    )));
                }
                Param::OneOf(values) if values.is_empty() => {
                    return Err(bad(format!("`{name}`: one_of needs at least one value")));
                }
                _ => {}
            }
        }
        let params: Vec<(String, Param)> = params.into_iter().collect();
        let path = pieces(route, &params, true).map_err(bad)?;
        let body = body
            .as_deref()
            .map(|b| pieces(b, &params, false))
            .transpose()
            .map_err(bad)?;
        let is_write = method != Method::GET && method != Method::HEAD;
        let mut headers = Vec::new();
        for (name, value) in &m.headers {
            let name = http::HeaderName::try_from(name.as_str())
                .map_err(|_| bad(format!("`{name}` is not a header name")))?;
            let reserved = ["host", "content-length", "transfer-encoding", "connection"];
            if reserved.contains(&name.as_str()) {
                return Err(bad(format!(
                    "the `{name}` header is the load generator's own; remove it"
                )));
            }
            headers.push((
                name.to_string(),
                pieces(value, &params, false).map_err(bad)?,
            ));
        }
        let capture_names: Vec<(String, String)> = m
            .capture
            .iter()
            .map(|(pool, field)| (pool.clone(), field.clone()))
            .collect();
        for (pool, field) in &capture_names {
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(bad(format!(
                    "capture `{pool}`: `{field}` is not a field; write `id` or `data.id`"
                )));
            }
        }
        Ok(Entry {
            headers,
            captures: Vec::new(),
            capture_names,
            route: crate::record::Route::new(&line),
            line,
            method,
            path,
            body,
            params,
            idempotency_key,
            retry_same_key: m.retry_same_key,
            keep_success_body: is_write,
        })
    }
}

/// Splits a template into text and placeholders. In a path every `{...}` is a placeholder; in a
/// body only `{identifier}` is, so that JSON braces stay text.
fn param_index(params: &[(String, Param)], name: &str) -> Result<usize, String> {
    params.iter().position(|(n, _)| n == name).ok_or_else(|| {
        format!("`{{{name}}}` has no generator; add e.g. params = {{ {name} = {{ uniform = [1, 20] }} }}")
    })
}

fn pieces(template: &str, params: &[(String, Param)], strict: bool) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let name = after.find('}').map(|close| &after[..close]);
        let is_ident = |n: &str| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        };
        match name {
            Some(name) if is_ident(name) => {
                text.push_str(&rest[..open]);
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(match name {
                    "seq" => Piece::Seq,
                    "uuid" => Piece::Uuid,
                    _ => Piece::Param(param_index(params, name)?),
                });
                rest = &after[name.len() + 1..];
            }
            _ if strict => return Err(format!("bad placeholder in `{template}`")),
            _ => {
                text.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}
