//! Toxiproxy's API served by fivehundred, driven by real Toxiproxy clients from crates.io
//! (`toxiproxy_rust`, blocking; `noxious-client`, async) and, for what neither client can
//! send (`reset_peer`, the toxics only fivehundred has, error cases), by plain HTTP requests.
//! Every toxic's effect is checked on real loopback traffic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fivehundred::toxiproxy::{Registry, ToxiproxyApi};
use noxious_client::{Client as NoxClient, StreamDirection, Toxic, ToxicKind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use toxiproxy_rust::client::Client as TpClient;
use toxiproxy_rust::proxy::ProxyPack;

/// Every test is bounded: a hang fails it instead of stalling CI.
const LIMIT: Duration = Duration::from_secs(30);

async fn api() -> SocketAddr {
    let api = ToxiproxyApi::new(Arc::new(Registry::new(7)));
    api.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// An echo server: what it reads it writes back.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A server that writes `n` bytes to each connection, then closes it.
async fn source(n: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(&vec![b'x'; n]).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

async fn round_trip_time(addr: &str) -> Duration {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let start = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
    start.elapsed()
}

/// Reads until the end; returns the bytes, the number of reads and how long it took.
async fn read_all(addr: &str) -> (Vec<u8>, usize, Duration, std::io::Result<()>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let mut reads = 0;
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) => return (out, reads, start.elapsed(), Ok(())),
            Ok(n) => {
                reads += 1;
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) => return (out, reads, start.elapsed(), Err(e)),
        }
    }
}

/// The servers of a test driven by the blocking `toxiproxy_rust` client: a runtime of their
/// own, so that the client's calls and drops happen outside any runtime, as it requires.
fn background() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs traffic on the background runtime, bounded.
fn traffic<R>(rt: &tokio::runtime::Runtime, f: impl std::future::Future<Output = R>) -> R {
    rt.block_on(async { timeout(LIMIT, f).await })
        .expect("traffic took too long")
}

fn tp_proxy(
    client: &TpClient,
    name: &str,
    upstream: SocketAddr,
) -> (String, toxiproxy_rust::proxy::Proxy) {
    let proxies = client
        .populate(vec![ProxyPack::new(
            name.into(),
            "127.0.0.1:0".into(),
            upstream.to_string(),
        )])
        .unwrap();
    assert_eq!(proxies.len(), 1, "populate answers with the proxy it made");
    let proxy = client.find_proxy(name).unwrap();
    (proxy.proxy_pack.listen.clone(), proxy)
}

#[test]
fn toxiproxy_rust_adds_latency_and_the_round_trip_takes_that_much_longer() {
    let rt = background();
    let (api, upstream) = rt.block_on(async { (api().await, echo().await) });
    let client = TpClient::new(api);
    let (listen, proxy) = tp_proxy(&client, "echo", upstream);
    assert!(traffic(&rt, round_trip_time(&listen)) < Duration::from_millis(100));
    proxy.with_latency("downstream".into(), 300, 0, 1.0);
    assert_eq!(proxy.toxics().unwrap()[0].name, "latency_downstream");
    let slow = traffic(&rt, round_trip_time(&listen));
    assert!(
        slow >= Duration::from_millis(290),
        "round trip took {slow:?}"
    );
    proxy.delete_all_toxics().unwrap();
    assert!(traffic(&rt, round_trip_time(&listen)) < Duration::from_millis(100));
}

#[test]
fn toxiproxy_rust_limits_bandwidth_to_the_rate_it_sets() {
    let rt = background();
    let (api, upstream) = rt.block_on(async { (api().await, source(400_000).await) });
    let client = TpClient::new(api);
    let (listen, proxy) = tp_proxy(&client, "bulk", upstream);
    // 200 KB/s: 400 000 bytes take two seconds.
    proxy.with_bandwidth("downstream".into(), 200, 1.0);
    let (data, _, took, _) = traffic(&rt, read_all(&listen));
    assert_eq!(data.len(), 400_000);
    let rate = data.len() as f64 / took.as_secs_f64();
    assert!(
        (160_000.0..=240_000.0).contains(&rate),
        "measured {rate:.0} B/s for a 200 KB/s toxic"
    );
}

#[test]
fn toxiproxy_rust_slow_close_timeout_slicer_and_limit_data_each_show_on_traffic() {
    let rt = background();
    let (api, upstream) = rt.block_on(async { (api().await, source(1000).await) });
    let client = TpClient::new(api);
    let (listen, proxy) = tp_proxy(&client, "src", upstream);

    proxy.with_slow_close("downstream".into(), 400, 1.0);
    let (data, _, took, _) = traffic(&rt, read_all(&listen));
    assert_eq!(data.len(), 1000);
    assert!(took >= Duration::from_millis(390), "closed after {took:?}");

    proxy.delete_all_toxics().unwrap();
    proxy.with_limit_data("downstream".into(), 100, 1.0);
    let (data, _, _, _) = traffic(&rt, read_all(&listen));
    assert_eq!(data.len(), 100, "limit_data lets exactly its bytes through");

    proxy.delete_all_toxics().unwrap();
    proxy.with_slicer("downstream".into(), 10, 0, 2000, 1.0);
    let (data, reads, _, _) = traffic(&rt, read_all(&listen));
    assert_eq!(data.len(), 1000);
    assert!(
        reads >= 20,
        "1000 bytes in slices of 10 came in {reads} reads"
    );

    proxy.delete_all_toxics().unwrap();
    proxy.with_timeout("downstream".into(), 300, 1.0);
    let (data, _, took, _) = traffic(&rt, read_all(&listen));
    assert!(data.is_empty(), "timeout drops the data");
    assert!(took >= Duration::from_millis(290), "closed after {took:?}");
}

#[test]
fn toxiproxy_rust_takes_a_proxy_down_and_up_and_resets_everything() {
    let rt = background();
    let (api, upstream) = rt.block_on(async { (api().await, echo().await) });
    let client = TpClient::new(api);
    let (listen, proxy) = tp_proxy(&client, "db", upstream);
    proxy
        .with_down(|| {
            let refused = std::net::TcpStream::connect(&listen);
            assert!(refused.is_err(), "a disabled proxy refuses connections");
        })
        .unwrap();
    proxy.with_latency("upstream".into(), 1000, 0, 1.0);
    proxy.disable().unwrap();
    client.reset().unwrap();
    assert!(client.is_running());
    assert!(client.version().unwrap().contains("2."));
    let all = client.all().unwrap();
    assert!(all["db"].proxy_pack.enabled, "reset enables every proxy");
    assert!(
        all["db"].proxy_pack.toxics.is_empty(),
        "reset removes every toxic"
    );
    assert!(traffic(&rt, round_trip_time(&listen)) < Duration::from_millis(100));
}

async fn nox_proxy(
    client: &NoxClient,
    name: &str,
    upstream: SocketAddr,
) -> (String, noxious_client::Proxy) {
    client
        .create_proxy(name, "127.0.0.1:0", &upstream.to_string())
        .await
        .unwrap();
    let proxy = client.proxy(name).await.unwrap();
    (proxy.config.listen.clone(), proxy)
}

fn nox_toxic(name: &str, kind: ToxicKind, direction: StreamDirection) -> Toxic {
    Toxic {
        kind,
        name: name.into(),
        toxicity: 1.0,
        direction,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noxious_client_adds_updates_and_removes_an_upstream_latency() {
    timeout(LIMIT, async {
        let (api, upstream) = (api().await, echo().await);
        let client = NoxClient::new(&api.to_string());
        let (listen, proxy) = nox_proxy(&client, "echo", upstream).await;
        let lag = ToxicKind::Latency {
            latency: 250,
            jitter: 0,
        };
        proxy
            .add_toxic(&nox_toxic("lag", lag, StreamDirection::Upstream))
            .await
            .unwrap();
        let toxics = proxy.toxics().await.unwrap();
        assert_eq!(toxics[0].direction, StreamDirection::Upstream);
        let slow = round_trip_time(&listen).await;
        assert!(
            slow >= Duration::from_millis(240),
            "round trip took {slow:?}"
        );
        let longer = ToxicKind::Latency {
            latency: 500,
            jitter: 0,
        };
        proxy
            .update_toxic("lag", 1.0, longer, StreamDirection::Upstream)
            .await
            .unwrap();
        let slower = round_trip_time(&listen).await;
        assert!(
            slower >= Duration::from_millis(490),
            "round trip took {slower:?}"
        );
        proxy.remove_toxic("lag").await.unwrap();
        assert!(round_trip_time(&listen).await < Duration::from_millis(100));
        assert!(proxy.toxics().await.unwrap().is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noxious_client_drives_every_toxic_it_knows_on_real_traffic() {
    timeout(LIMIT, async {
        let (api, upstream) = (api().await, source(300_000).await);
        let client = NoxClient::new(&api.to_string());
        let (listen, proxy) = nox_proxy(&client, "bulk", upstream).await;
        let down = StreamDirection::Downstream;

        proxy
            .add_toxic(&nox_toxic("bw", ToxicKind::Bandwidth { rate: 300 }, down))
            .await
            .unwrap();
        let (data, _, took, _) = read_all(&listen).await;
        assert_eq!(data.len(), 300_000);
        let rate = data.len() as f64 / took.as_secs_f64();
        assert!(
            (240_000.0..=360_000.0).contains(&rate),
            "measured {rate:.0} B/s"
        );
        proxy.remove_toxic("bw").await.unwrap();

        let limit = ToxicKind::LimitData { bytes: 5000 };
        proxy
            .add_toxic(&nox_toxic("cap", limit, down))
            .await
            .unwrap();
        assert_eq!(read_all(&listen).await.0.len(), 5000);
        proxy.remove_toxic("cap").await.unwrap();

        let slow_close = ToxicKind::SlowClose { delay: 300 };
        proxy
            .add_toxic(&nox_toxic("sc", slow_close, down))
            .await
            .unwrap();
        let (data, _, took, end) = read_all(&listen).await;
        assert_eq!(data.len(), 300_000);
        assert!(end.is_ok(), "{end:?}");
        assert!(took >= Duration::from_millis(290), "closed after {took:?}");
        proxy.remove_toxic("sc").await.unwrap();

        let slicer = ToxicKind::Slicer {
            average_size: 1000,
            size_variation: 100,
            delay: 1000,
        };
        proxy
            .add_toxic(&nox_toxic("sl", slicer, down))
            .await
            .unwrap();
        let (data, reads, _, _) = read_all(&listen).await;
        assert_eq!(data.len(), 300_000);
        assert!(
            reads >= 200,
            "300 000 bytes in slices of about 1000 came in {reads} reads"
        );
        proxy.remove_toxic("sl").await.unwrap();

        let to = ToxicKind::Timeout { timeout: 200 };
        proxy.add_toxic(&nox_toxic("to", to, down)).await.unwrap();
        let (data, _, took, _) = read_all(&listen).await;
        assert!(
            data.is_empty(),
            "timeout drops the data: {} bytes came",
            data.len()
        );
        assert!(took >= Duration::from_millis(190), "closed after {took:?}");

        let again = proxy
            .add_toxic(&nox_toxic("to", to, down))
            .await
            .unwrap_err();
        assert!(again.to_string().contains("409"), "{again}");
        client.reset_state().await.unwrap();
        assert!(client.proxies().await.unwrap()["bulk"].is_enabled());
        let mut proxy = client.proxy("bulk").await.unwrap();
        proxy.disable().await.unwrap();
        assert!(TcpStream::connect(&listen).await.is_err());
        proxy.enable().await.unwrap();
        assert_eq!(read_all(&listen).await.0.len(), 300_000);
        proxy.delete().await.unwrap();
        let gone = client.proxy("bulk").await.unwrap_err();
        assert!(gone.to_string().contains("404"), "{gone}");
    })
    .await
    .unwrap();
}

/// A plain HTTP client for what no Toxiproxy client crate can send.
struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(api: SocketAddr) -> Http {
        Http {
            base: format!("http://{api}"),
            client: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn proxy(&self, name: &str, upstream: SocketAddr) -> String {
        let body = json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()});
        let (status, created) = self.post("/proxies", body).await;
        assert_eq!(status, 201, "{created}");
        created["listen"].as_str().unwrap().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_resets_the_connection_once_data_flows() {
    timeout(LIMIT, async {
        let (api, upstream) = (api().await, echo().await);
        let http = Http::new(api);
        let listen = http.proxy("echo", upstream).await;
        let toxic =
            json!({"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 100}});
        let (status, body) = http.post("/proxies/echo/toxics", toxic).await;
        assert_eq!(status, 200, "{body}");
        let mut s = TcpStream::connect(&listen).await.unwrap();
        let start = Instant::now();
        s.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        let err = s.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(start.elapsed() >= Duration::from_millis(90));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_toxiproxys_error_body_and_change_nothing() {
    timeout(LIMIT, async {
        let (api, upstream) = (api().await, echo().await);
        let http = Http::new(api);
        let listen = http.proxy("echo", upstream).await;
        let cases = [
            (
                "/proxies/echo/toxics",
                json!({"type": "lag"}),
                400,
                "invalid toxic type",
            ),
            (
                "/proxies/echo/toxics",
                json!({"type": "latency", "attributes": {"latency": "slow"}}),
                400,
                "bad request body",
            ),
            (
                "/proxies/echo/toxics",
                json!({"type": "latency", "stream": "sideways"}),
                400,
                "stream was invalid",
            ),
            (
                "/proxies/nope/toxics",
                json!({"type": "latency"}),
                404,
                "proxy not found",
            ),
            (
                "/proxies",
                json!({"name": "echo", "upstream": upstream.to_string()}),
                409,
                "proxy already exists",
            ),
            (
                "/proxies",
                json!({"name": "x", "listen": listen, "upstream": upstream.to_string()}),
                409,
                "cannot listen",
            ),
            (
                "/proxies",
                json!({"name": "y", "upstream": "127.0.0.1:notaport"}),
                400,
                "does not resolve",
            ),
            (
                "/proxies",
                json!({"upstream": "127.0.0.1:1"}),
                400,
                "missing required field: name",
            ),
        ];
        for (path, body, want_status, want_text) in cases {
            let (status, answer) = http.post(path, body.clone()).await;
            assert_eq!(status, want_status, "{path} {body}: {answer}");
            assert_eq!(answer["status"], json!(want_status), "{answer}");
            let message = answer["error"].as_str().unwrap();
            assert!(message.contains(want_text), "{message}");
        }
        let (_, all) = http.call(reqwest::Method::GET, "/proxies", None).await;
        assert_eq!(
            all.as_object().unwrap().len(),
            1,
            "nothing was created: {all}"
        );
        assert!(all["echo"]["toxics"].as_array().unwrap().is_empty());
        let (status, _) = http
            .call(reqwest::Method::GET, "/proxies/echo/toxics/none", None)
            .await;
        assert_eq!(status, 404);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_show_delete_metrics_and_version_answer_as_toxiproxy_does() {
    timeout(LIMIT, async {
        let (api, upstream) = (api().await, echo().await);
        let http = Http::new(api);
        let listen = http.proxy("echo", upstream).await;
        let (_, t) = http
            .post(
                "/proxies/echo/toxics",
                json!({"type": "latency", "toxicity": 0.5, "attributes": {"latency": 10}}),
            )
            .await;
        assert_eq!(t["name"], "latency_downstream");
        let (status, t) = http
            .call(
                reqwest::Method::PATCH,
                "/proxies/echo/toxics/latency_downstream",
                Some(json!({"attributes": {"jitter": 3}})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(t["attributes"], json!({"latency": 10, "jitter": 3}));
        assert_eq!(t["toxicity"], json!(0.5));
        let (status, p) = http
            .call(
                reqwest::Method::PATCH,
                "/proxies/echo",
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!((status, &p["enabled"]), (200, &json!(false)));
        assert!(TcpStream::connect(&listen).await.is_err());
        http.call(
            reqwest::Method::PATCH,
            "/proxies/echo",
            Some(json!({"enabled": true})),
        )
        .await;
        round_trip_time(&listen).await;
        let (_, metrics) = http.call(reqwest::Method::GET, "/metrics", None).await;
        let metrics = metrics.as_str().unwrap().to_string();
        assert!(
            metrics.contains("toxiproxy_proxy_sent_bytes_total{direction=\"downstream\""),
            "{metrics}"
        );
        let (_, version) = http.call(reqwest::Method::GET, "/version", None).await;
        assert!(version["version"].as_str().unwrap().starts_with("2."));
        let (status, _) = http
            .call(
                reqwest::Method::DELETE,
                "/proxies/echo/toxics/latency_downstream",
                None,
            )
            .await;
        assert_eq!(status, 204);
        let (status, _) = http
            .call(reqwest::Method::DELETE, "/proxies/echo", None)
            .await;
        assert_eq!(status, 204);
        assert!(
            TcpStream::connect(&listen).await.is_err(),
            "a deleted proxy stops listening"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_response_toxic_answers_in_place_of_the_upstream() {
    timeout(LIMIT, async {
        let api = api().await;
        let http = Http::new(api);
        // The upstream is never reached: nothing listens there.
        let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let listen = http.proxy("web", nowhere).await;
        let toxic = json!({"type": "http_response", "attributes": {"status": 503, "body": "{\"down\":true}", "content_type": "application/json", "delay": 150}});
        let (status, body) = http.post("/proxies/web/toxics", toxic).await;
        assert_eq!(status, 200, "{body}");
        let start = Instant::now();
        let res = reqwest::get(format!("http://{listen}/orders")).await.unwrap();
        assert_eq!(res.status().as_u16(), 503);
        assert_eq!(res.text().await.unwrap(), "{\"down\":true}");
        assert!(start.elapsed() >= Duration::from_millis(140));

        let abort = json!({"attributes": {"abort": true, "delay": 0}});
        let (status, _) = http.post("/proxies/web/toxics/http_response_downstream", abort).await;
        assert_eq!(status, 200);
        let err = reqwest::get(format!("http://{listen}/orders")).await.unwrap_err();
        assert!(!err.is_status(), "an aborted request gets no answer: {err}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_postgresql_client_sees_the_chosen_sqlstate_the_stall_and_too_many_clients() {
    use sqlx::Connection;
    timeout(Duration::from_secs(90), async {
        let cluster = pglab::PgCluster::start()
            .await
            .expect("PostgreSQL server binaries are needed for this test");
        let upstream: SocketAddr = format!("127.0.0.1:{}", cluster.port()).parse().unwrap();
        let api = api().await;
        let http = Http::new(api);
        let listen = http.proxy("pg", upstream).await;
        let url = pglab::replace_host_port(&cluster.url("postgres"), &listen);

        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut conn).await.unwrap();
        assert_eq!(one, 1, "plain queries pass through the PostgreSQL-aware proxy");

        let toxic = json!({"type": "postgres_error", "attributes": {"sqlstate": "40001", "message": "could not serialize access", "match": "from pg_class"}});
        let (status, body) = http.post("/proxies/pg/toxics", toxic).await;
        assert_eq!(status, 200, "{body}");
        // Connections opened while the toxic is on speak through it.
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let err = sqlx::query("select count(*) from pg_class")
            .fetch_one(&mut conn)
            .await
            .unwrap_err();
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.code().as_deref(), Some("40001"));
        let two: i32 = sqlx::query_scalar("select 2").fetch_one(&mut conn).await.unwrap();
        assert_eq!(two, 2, "the session stays usable; other queries pass");
        http.call(reqwest::Method::DELETE, "/proxies/pg/toxics/postgres_error_downstream", None).await;

        let stall = json!({"type": "postgres_stall", "attributes": {"match": "pg_sleep", "duration": 400}});
        http.post("/proxies/pg/toxics", stall).await;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let start = Instant::now();
        sqlx::query("select pg_sleep(0)").execute(&mut conn).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(390), "took {:?}", start.elapsed());
        http.call(reqwest::Method::DELETE, "/proxies/pg/toxics/postgres_stall_downstream", None).await;

        http.post("/proxies/pg/toxics", json!({"type": "postgres_too_many_clients"})).await;
        let err = sqlx::PgConnection::connect(&url).await.unwrap_err();
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.code().as_deref(), Some("53300"));
        cluster.stop();
    })
    .await
    .unwrap();
}
