//! Sending a generated request and recording it with the scenario's load, under its request
//! line marked `(generated)`, so that the usual checks judge it; and what counts as the target's
//! failure: a 5xx, or no answer.

use super::generate::Generated;
use crate::record::{Outcome, Recorder, RequestRecord, Sent, TransportError};

/// Sends one request and records it; returns the record.
pub async fn send(
    client: &reqwest::Client,
    base_url: &str,
    recorder: &Recorder,
    seq: u64,
    request: &Generated,
) -> RequestRecord {
    let at_ms = recorder.now_ms();
    let url = format!("{base_url}{}", request.path);
    let mut builder = client.request(request.method.clone(), &url);
    for (k, v) in request.headers() {
        builder = builder.header(k, v);
    }
    if let Some(body) = request.body() {
        builder = builder.body(body);
    }
    let outcome = match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            match response.bytes().await {
                Ok(bytes) => {
                    let body = (status >= 400 || request.method != reqwest::Method::GET).then(|| {
                        let cut = &bytes[..bytes.len().min(crate::load::BODY_LIMIT)];
                        String::from_utf8_lossy(cut).into()
                    });
                    Outcome::Response {
                        status,
                        headers,
                        body,
                    }
                }
                Err(e) => transport(&e),
            }
        }
        Err(e) => transport(&e),
    };
    let record = RequestRecord {
        seq,
        at_ms,
        route: request.route().as_str().into(),
        path: request.path.as_str().into(),
        sent: Sent::new(request.headers().into(), request.body()),
        latency_ms: recorder.now_ms() - at_ms,
        outcome,
    };
    recorder.with(|r| r.requests.push(record.clone()));
    record
}

fn transport(e: &reqwest::Error) -> Outcome {
    let kind = if e.is_connect() {
        TransportError::Connect
    } else if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_request() || e.is_body() {
        TransportError::Closed
    } else {
        TransportError::Other
    };
    Outcome::Error {
        kind,
        message: e.to_string().into(),
    }
}

/// Why a recorded answer is a failure of the target, if it is.
pub fn failure(r: &RequestRecord) -> Option<String> {
    match &r.outcome {
        Outcome::Response { status, .. } if *status >= 500 => Some(format!("answered {status}")),
        Outcome::Response { .. } => None,
        Outcome::Error { message, .. } => Some(format!("no answer: {message}")),
    }
}
