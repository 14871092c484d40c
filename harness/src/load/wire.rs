//! One HTTP/1.1 client connection of the load generator: writes a request, reads the whole
//! answer, and keeps what the record needs.
//!
//! Hand-written on top of `httparse` (the parser hyper itself uses) instead of hyper's client,
//! because the generator must not be the bottleneck of a benchmark. Measured on a 2-core machine
//! against the same server, closed loop: hyper's pooled client cost about 9 µs of CPU per request
//! and a hyper connection per worker about 5 µs; this loop about 3 µs, the same as wrk. The
//! difference is the per-request machinery a general client needs (a connection task and a
//! channel to it, a pool, header maps) and a generator does not. What it does not do, because a
//! load generator talking to a loopback service never needs it: TLS, HTTP/2, proxies,
//! redirects, decompression, pipelining, `Expect: 100-continue`.
//!
//! Framing follows RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; `Transfer-Encoding:
//! chunked`; `Content-Length`; otherwise the body runs to the end of the connection.

use std::collections::BTreeMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::record::TransportError;

/// A head larger than this is refused (hyper's default limit is about the same).
const HEAD_LIMIT: usize = 64 * 1024;
/// Most answers fit in one read of this size; the buffer grows for larger heads.
const INITIAL_BUFFER: usize = 8 * 1024;
/// Headers parsed per answer; more is an error (hyper's client allows 100).
const MAX_HEADERS: usize = 100;

/// Where the target listens.
#[derive(Debug, Clone)]
pub(super) enum Dest {
    Addr(SocketAddr),
    /// A host name (`localhost`), resolved at each connect.
    Name(String, u16),
}

/// Why an exchange failed: the record's transport error and its message.
#[derive(Debug)]
pub(super) struct Failure {
    pub kind: TransportError,
    pub message: String,
    /// Nothing reached the server: the request may be sent again on another connection.
    pub unsent: bool,
}

impl Failure {
    fn io(context: &str, e: &io::Error) -> Failure {
        Failure {
            kind: classify(e),
            message: format!("{context}: {e}"),
            unsent: false,
        }
    }

    fn closed(message: String) -> Failure {
        Failure {
            kind: TransportError::Closed,
            message,
            unsent: false,
        }
    }

    fn invalid(message: String) -> Failure {
        Failure {
            kind: TransportError::Other,
            message,
            unsent: false,
        }
    }
}

fn classify(e: &io::Error) -> TransportError {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => TransportError::Connect,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            TransportError::Closed
        }
        TimedOut => TransportError::Timeout,
        _ => TransportError::Other,
    }
}

/// What of an answer is kept, and noted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keep<'a> {
    /// The headers of an answer >= 400 (all of them; see [`Known`]).
    pub headers: bool,
    /// The headers of any other answer too (without the framing ones).
    pub success_headers: bool,
    /// The body of an answer >= 400.
    pub error_body: bool,
    /// The body of a 2xx answer (writes: the integrity check needs the order ids).
    pub success_body: bool,
    /// Up to this many bytes of a kept body.
    pub body_limit: usize,
    /// The service's request-id header (lower case): whether it came is noted on every answer,
    /// and it is kept wherever headers are (see [`Known`]).
    pub request_id: &'a str,
}

/// A complete answer.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// Whether the answer carried a non-empty [`Keep::request_id`] header (known even where the
    /// headers are not kept: the request-id check reads it of every answer).
    pub request_id: bool,
    pub body: Option<String>,
    /// From the request's first write to the answer's last byte, as wrk times a request.
    pub took: Duration,
}

pub(super) struct Conn {
    stream: TcpStream,
    buf: ReadBuf,
}

impl Conn {
    pub(super) async fn connect(dest: &Dest) -> Result<Conn, Failure> {
        let connected = match dest {
            Dest::Addr(addr) => TcpStream::connect(addr).await,
            Dest::Name(host, port) => TcpStream::connect((host.as_str(), *port)).await,
        };
        let stream = connected.map_err(|e| {
            let to = match dest {
                Dest::Addr(addr) => addr.to_string(),
                Dest::Name(host, port) => format!("{host}:{port}"),
            };
            Failure {
                kind: match classify(&e) {
                    // Whatever went wrong, no connection means a connect error.
                    TransportError::Timeout => TransportError::Timeout,
                    _ => TransportError::Connect,
                },
                message: format!("cannot connect to {to}: {e}"),
                unsent: true,
            }
        })?;
        // Small requests and answers: Nagle's algorithm would hold them back.
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: ReadBuf::new(),
        })
    }

    /// Whether the server closed this idle connection (or sent something unasked), so that it
    /// must not be used again. Asks the runtime's cached readiness first, so that a healthy
    /// connection costs no system call: only a readable idle connection is looked at.
    pub(super) fn is_stale(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                !matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads the whole answer. Returns the
    /// answer and whether the connection can carry another request.
    pub(super) async fn exchange(
        &mut self,
        request: &[u8],
        head_request: bool,
        keep: Keep<'_>,
    ) -> Result<(Answer, bool), Failure> {
        self.buf.clear();
        let written_at = Instant::now();
        if let Err(e) = self.stream.write_all(request).await {
            let mut failure = Failure::io("cannot send the request", &e);
            failure.unsent = true;
            return Err(failure);
        }
        let head = loop {
            // Nothing read yet: nothing to parse.
            let parsed = match self.buf.pending() {
                [] => Ok(None),
                pending => parse_head(pending, keep),
            };
            if let Some(head) = parsed.map_err(Failure::invalid)? {
                // 1xx answers are interim (101 switches protocols: nothing more for us).
                if (100..200).contains(&head.status) && head.status != 101 {
                    self.buf.consume(head.len);
                    continue;
                }
                break head;
            }
            if self.buf.pending().len() >= HEAD_LIMIT {
                return Err(Failure::invalid(format!(
                    "invalid answer: its head is larger than {} KiB",
                    HEAD_LIMIT / 1024
                )));
            }
            match self.buf.read_more(&mut self.stream).await {
                Ok(0) if self.buf.pending().is_empty() => {
                    return Err(Failure::closed(
                        "the connection closed before an answer".into(),
                    ));
                }
                Ok(0) => {
                    return Err(Failure::closed(
                        "the connection closed in the middle of the answer's head".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(Failure::io("cannot read the answer", &e)),
            }
        };
        self.buf.consume(head.len);
        let status = head.status;
        let framing = if head_request || status < 200 || status == 204 || status == 304 {
            Framing::Empty
        } else {
            head.framing
        };
        let keep_body = if status >= 400 {
            keep.error_body
        } else {
            (200..300).contains(&status) && keep.success_body
        };
        let mut body = Body {
            kept: Vec::new(),
            keep: keep_body,
            limit: keep.body_limit,
        };
        let cut = |what: &str| Failure::closed(format!("answer {status} cut short: {what}"));
        let to_end = matches!(framing, Framing::ToEnd);
        self.read_body(framing, &mut body)
            .await
            .map_err(|e| match e {
                BodyError::Eof => cut("the connection closed before the end of the body"),
                BodyError::Io(e) => {
                    let mut f = Failure::io(&format!("answer {status} cut short"), &e);
                    if f.kind == TransportError::Connect {
                        f.kind = TransportError::Closed;
                    }
                    f
                }
                BodyError::Invalid(what) => {
                    Failure::invalid(format!("answer {status}: invalid body: {what}"))
                }
            })?;
        // Bytes after the answer were not asked for: the connection's framing cannot be trusted.
        let reusable = head.persistent && !to_end && status != 101 && self.buf.pending().is_empty();
        let took = written_at.elapsed();
        let answer = Answer {
            status,
            headers: head.headers,
            request_id: head.request_id,
            body: keep_body.then(|| String::from_utf8_lossy(&body.kept).into_owned()),
            took,
        };
        Ok((answer, reusable))
    }

    async fn read_body(&mut self, framing: Framing, body: &mut Body) -> Result<(), BodyError> {
        match framing {
            Framing::Empty => Ok(()),
            Framing::Length(n) => self.read_exact_into(n, body).await,
            Framing::ToEnd => loop {
                if self.buf.pending().is_empty() && self.read_more().await? == 0 {
                    return Ok(());
                }
                body.take(self.buf.pending());
                self.buf.consume_all();
            },
            Framing::Chunked => loop {
                let size = loop {
                    match httparse::parse_chunk_size(self.buf.pending()) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            self.buf.consume(used);
                            break size;
                        }
                        Ok(httparse::Status::Partial) => {
                            if self.buf.pending().len() > 1024 {
                                return Err(BodyError::Invalid("chunk size line too long"));
                            }
                            self.read_some().await?;
                        }
                        Err(_) => return Err(BodyError::Invalid("bad chunk size")),
                    }
                };
                if size == 0 {
                    return self.skip_trailers().await;
                }
                self.read_exact_into(size, body).await?;
                while self.buf.pending().len() < 2 {
                    self.read_some().await?;
                }
                if &self.buf.pending()[..2] != b"\r\n" {
                    return Err(BodyError::Invalid("chunk not followed by CRLF"));
                }
                self.buf.consume(2);
            },
        }
    }

    async fn read_exact_into(&mut self, mut left: u64, body: &mut Body) -> Result<(), BodyError> {
        while left > 0 {
            if self.buf.pending().is_empty() {
                self.read_some().await?;
            }
            let pending = self.buf.pending();
            let n = pending
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            body.take(&pending[..n]);
            self.buf.consume(n);
            left -= n as u64;
        }
        Ok(())
    }

    /// Trailer fields after the last chunk, up to the empty line.
    async fn skip_trailers(&mut self) -> Result<(), BodyError> {
        loop {
            match self.buf.pending().windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.buf.consume(2);
                    return Ok(());
                }
                Some(i) => self.buf.consume(i + 2),
                None if self.buf.pending().len() > HEAD_LIMIT => {
                    return Err(BodyError::Invalid("trailers too large"));
                }
                None => self.read_some().await?,
            }
        }
    }

    async fn read_more(&mut self) -> Result<usize, BodyError> {
        self.buf
            .read_more(&mut self.stream)
            .await
            .map_err(BodyError::Io)
    }

    /// Reads at least one byte; the end of the stream here is an answer cut short.
    async fn read_some(&mut self) -> Result<(), BodyError> {
        match self.read_more().await? {
            0 => Err(BodyError::Eof),
            _ => Ok(()),
        }
    }
}

enum BodyError {
    Eof,
    Io(io::Error),
    Invalid(&'static str),
}

/// The body as it arrives: kept up to a limit, or only counted past.
struct Body {
    kept: Vec<u8>,
    keep: bool,
    limit: usize,
}

impl Body {
    fn take(&mut self, data: &[u8]) {
        if self.keep {
            let room = self.limit.saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    ToEnd,
}

/// The parsed head of an answer, owned.
#[derive(Debug)]
struct Head {
    /// Bytes of the head, including the empty line.
    len: usize,
    status: u16,
    framing: Framing,
    /// Whether the connection stays open after this answer (by version and `Connection`).
    persistent: bool,
    /// The headers recorded: lower-case names, repeated headers joined with ", ".
    headers: BTreeMap<String, String>,
    /// Whether a non-empty request-id header came with it.
    request_id: bool,
}

/// Headers the framing reads, told apart by length first: this runs for every answer.
///
/// The framing headers (`connection`, `content-length`, `date`, `keep-alive`,
/// `transfer-encoding`) say how the bytes were framed or when they were sent, not how the
/// service behaved: they are not recorded for answers below 400, which are most of a run, to
/// keep records small. Error answers keep every header, as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    ContentLength,
    TransferEncoding,
    Connection,
    /// Other framing headers (`date`, `keep-alive`): only recorded for errors.
    Framing,
    /// The service's request-id header ([`Keep::request_id`], `x-request-id` unless its lab
    /// file names another): whether it is there is noted for every answer.
    RequestId,
    Other,
}

/// What `name` is to the parser; `request_id` is the service's request-id header. A framing
/// header is never taken for it (a lab file cannot name one, see [`frames_answers`]).
fn known(name: &str, request_id: &str) -> Known {
    match framing(name) {
        // Lengths first: most headers cost one comparison of two numbers here.
        Known::Other if name.len() == request_id.len() && name.eq_ignore_ascii_case(request_id) => {
            Known::RequestId
        }
        kind => kind,
    }
}

fn framing(name: &str) -> Known {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match name.len() {
        4 if is("date") => Known::Framing,
        10 if is("connection") => Known::Connection,
        10 if is("keep-alive") => Known::Framing,
        14 if is("content-length") => Known::ContentLength,
        17 if is("transfer-encoding") => Known::TransferEncoding,
        _ => Known::Other,
    }
}

/// Whether `name` is a header that frames an answer or says when it was sent (`content-length`,
/// `date`, ...): never a service's own, so never its request-id header.
pub(crate) fn frames_answers(name: &str) -> bool {
    framing(name) != Known::Other
}

/// Parses an answer's head; `None` while it is incomplete. With `keep.headers`, the headers of
/// an error are collected, and with `keep.success_headers` those of other answers too (see
/// [`Known`] for which); whether `keep.request_id` came is noted whatever is kept.
fn parse_head(bytes: &[u8], keep: Keep<'_>) -> Result<Option<Head>, String> {
    let (record, record_success) = (keep.headers, keep.success_headers);
    // Uninitialised slots: initialising a hundred headers for every answer cost more than
    // parsing it.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        bytes,
        &mut slots,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid answer: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let http11 = response.version == Some(1);
    let record_all = status >= 400;
    let record = record && (record_all || record_success);
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut request_id = false;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for h in response.headers.iter() {
        let kind = known(h.name, keep.request_id);
        match kind {
            Known::ContentLength => {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        format!("invalid answer: bad content-length {:?}", lossy(h.value))
                    })?;
                if content_length.is_some_and(|c| c != n) {
                    return Err("invalid answer: conflicting content-length headers".into());
                }
                content_length = Some(n);
            }
            Known::TransferEncoding => {
                transfer_encoding = true;
                // Chunked must be the last coding for the body to be chunk-framed.
                chunked = lossy(h.value)
                    .rsplit(',')
                    .next()
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
            }
            Known::Connection => {
                for token in lossy(h.value).split(',') {
                    let token = token.trim();
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            Known::RequestId => request_id |= h.value.iter().any(|b| !b.is_ascii_whitespace()),
            Known::Framing | Known::Other => {}
        }
        let kept = matches!(kind, Known::Other | Known::RequestId);
        if !record || (!kept && !record_all) {
            continue;
        }
        let value = lossy(h.value);
        headers
            .entry(h.name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let framing = match (transfer_encoding, chunked, content_length) {
        (true, true, _) => Framing::Chunked,
        (true, false, _) => Framing::ToEnd,
        (false, _, Some(n)) => Framing::Length(n),
        (false, _, None) => Framing::ToEnd,
    };
    // A message with both framings is suspect (request smuggling); do not reuse the connection.
    let persistent = if http11 { !close } else { keep_alive && !close }
        && !(transfer_encoding && content_length.is_some());
    Ok(Some(Head {
        len,
        status,
        framing,
        persistent,
        headers,
        request_id,
    }))
}

/// Header values are ASCII nearly always: checked first, the lossy conversion only when not.
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// A read buffer reused across the exchanges of one connection: holds what was read and not yet
/// consumed.
struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn new() -> ReadBuf {
        ReadBuf {
            data: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.clear();
        }
    }

    fn consume_all(&mut self) {
        self.clear();
    }

    /// Reads what the socket has into the free space (made by moving pending bytes to the front,
    /// or by growing); 0 at the end of the stream.
    async fn read_more(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = self.data.len() * 2;
                self.data.resize(grown, 0);
            }
        }
        let n = stream.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes(), KEEP).unwrap().unwrap()
    }

    #[test]
    fn framing_follows_the_headers() {
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        assert_eq!(
            (h.framing, h.persistent, h.len),
            (Framing::Length(5), true, 38)
        );
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        assert_eq!((h.framing, h.persistent), (Framing::ToEnd, false));
        let h = head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert!(!h.persistent, "HTTP/1.0 closes unless asked otherwise");
        let h = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n");
        assert!(h.persistent);
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-", KEEP)
                .unwrap()
                .map(|h| h.len),
            None
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", KEEP).is_err());
        assert!(
            parse_head(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                KEEP
            )
            .is_err()
        );
    }

    #[test]
    fn errors_keep_every_header_and_successes_drop_the_framing_ones() {
        let text = "Date: x\r\nContent-Length: 0\r\nX-Request-Id: r1\r\nVary: a\r\nVary: b\r\n\r\n";
        let ok = head(&format!("HTTP/1.1 200 OK\r\n{text}"));
        assert_eq!(
            ok.headers.keys().collect::<Vec<_>>(),
            ["vary", "x-request-id"]
        );
        assert_eq!(ok.headers["vary"], "a, b");
        let err = head(&format!("HTTP/1.1 503 Service Unavailable\r\n{text}"));
        assert_eq!(
            err.headers.keys().collect::<Vec<_>>(),
            ["content-length", "date", "vary", "x-request-id"]
        );
    }

    #[test]
    fn the_services_own_request_id_header_is_noted_on_a_success_that_keeps_no_header() {
        let correlation = Keep {
            success_headers: false,
            request_id: "x-correlation-id",
            ..KEEP
        };
        let parse = |text: &str, keep| {
            parse_head(text.as_bytes(), keep)
                .unwrap()
                .expect("a whole head")
        };
        let both =
            "Content-Length: 0\r\nX-Correlation-Id: c1\r\nX-Request-Id: r1\r\nVary: a\r\n\r\n";
        let ok = parse(&format!("HTTP/1.1 200 OK\r\n{both}"), correlation);
        assert!(ok.request_id, "X-Correlation-Id came and was not noted");
        assert!(ok.headers.is_empty(), "{:?}", ok.headers);
        // x-request-id is just another header to a service whose ids come in another one.
        let other = "Content-Length: 0\r\nX-Request-Id: r1\r\n\r\n";
        assert!(!parse(&format!("HTTP/1.1 200 OK\r\n{other}"), correlation).request_id);
        let blank = "Content-Length: 0\r\nx-correlation-id:  \r\n\r\n";
        assert!(!parse(&format!("HTTP/1.1 200 OK\r\n{blank}"), correlation).request_id);
        // An error keeps it with the rest, under its lower-case name.
        let err = parse(&format!("HTTP/1.1 500 Oops\r\n{both}"), correlation);
        assert!(err.request_id);
        assert_eq!(err.headers["x-correlation-id"], "c1");
        assert_eq!(err.headers["x-request-id"], "r1");
    }

    #[test]
    fn a_framing_header_is_never_taken_for_the_request_id() {
        assert!(frames_answers("Content-Length") && frames_answers("date"));
        assert!(!frames_answers("x-request-id") && !frames_answers("x-correlation-id"));
        assert_eq!(
            known("Content-Length", "content-length"),
            Known::ContentLength
        );
        assert_eq!(known("X-Trace", "x-trace"), Known::RequestId);
        assert_eq!(known("X-Tracy", "x-trace"), Known::Other);
    }

    /// Serves each of `answers` (raw bytes, written in pieces to exercise partial reads) to one
    /// request on one connection, then closes.
    async fn serve(answers: Vec<Vec<u8>>) -> SocketAddr {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await.unwrap();
                for piece in answer.chunks(7) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        addr
    }

    const KEEP: Keep<'static> = Keep {
        headers: true,
        success_headers: true,
        error_body: true,
        success_body: true,
        body_limit: 10,
        request_id: "x-request-id",
    };

    #[tokio::test]
    async fn chunked_length_and_interim_answers_are_read_whole_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nt: 1\r\n\r\n".to_vec(),
            b"HTTP/1.1 500 Oops\r\ncontent-length: 12\r\n\r\nhello world!".to_vec(),
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        ])
        .await;
        let mut c = Conn::connect(&Dest::Addr(addr)).await.unwrap();
        let req = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        let (a, reusable) = c.exchange(req, false, KEEP).await.unwrap();
        assert_eq!(
            (a.status, a.body.as_deref(), reusable),
            (200, Some("hello worl"), true)
        );
        let (a, reusable) = c.exchange(req, false, KEEP).await.unwrap();
        assert_eq!(
            (a.status, a.body.as_deref(), reusable),
            (500, Some("hello worl"), true)
        );
        assert_eq!(a.headers["content-length"], "12");
        let (a, _) = c.exchange(req, false, KEEP).await.unwrap();
        assert_eq!((a.status, a.body.as_deref()), (204, Some("")));
    }

    #[tokio::test]
    async fn a_body_to_the_end_of_the_connection_and_a_cut_answer() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec()]).await;
        let mut c = Conn::connect(&Dest::Addr(addr)).await.unwrap();
        let (a, reusable) = c
            .exchange(b"GET / HTTP/1.1\r\n\r\n", false, KEEP)
            .await
            .unwrap();
        assert_eq!((a.body.as_deref(), reusable), (Some("until the "), false));

        let addr = serve(vec![
            b"HTTP/1.1 502 Bad\r\ncontent-length: 100\r\n\r\nshort".to_vec(),
        ])
        .await;
        let mut c = Conn::connect(&Dest::Addr(addr)).await.unwrap();
        let f = c
            .exchange(b"GET / HTTP/1.1\r\n\r\n", false, KEEP)
            .await
            .unwrap_err();
        assert_eq!(f.kind, TransportError::Closed);
        assert!(f.message.contains("answer 502 cut short"), "{}", f.message);
    }

    #[tokio::test]
    async fn a_server_that_hung_up_makes_an_idle_connection_stale() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ])
        .await;
        let mut c = Conn::connect(&Dest::Addr(addr)).await.unwrap();
        assert!(!c.is_stale());
        let (_, reusable) = c
            .exchange(b"GET / HTTP/1.1\r\n\r\n", false, KEEP)
            .await
            .unwrap();
        assert!(reusable);
        // The server task ends after its one answer and its socket closes.
        let mut stale = false;
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if c.is_stale() {
                stale = true;
                break;
            }
        }
        assert!(stale, "the closed connection still looks usable");
    }
}
