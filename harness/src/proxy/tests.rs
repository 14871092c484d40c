//! Tests of the fault proxy on real loopback sockets, against a small echo server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

use super::*;

/// Every test is bounded: a hang fails the test instead of stalling CI.
const LIMIT: Duration = Duration::from_secs(20);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// An echo server: copies what it reads back until EOF, then closes its side. Counts accepted
/// connections, to tell whether the proxy reached it.
struct Echo {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
}

async fn echo_server() -> Echo {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Echo { addr, accepted }
}

async fn proxy_to(upstream: SocketAddr, seed: u64) -> Proxy {
    Proxy::start(loopback(), upstream, seed).await.unwrap()
}

/// Writes `msg` and reads the same number of bytes back.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(msg).await?;
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back).await?;
    Ok(back)
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).await.unwrap();
    // Fails when the proxy has already reset the connection, which some tests want.
    let _ = s.set_nodelay(true);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_pass_unchanged_in_both_directions_when_no_fault_is_active() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 1).await;
        let mut data = vec![0u8; 8 * 1024 * 1024];
        ChaCha8Rng::seed_from_u64(42).fill_bytes(&mut data);

        let stream = connect(proxy.local_addr()).await;
        let (mut r, mut w) = stream.into_split();
        let to_send = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&to_send).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::with_capacity(data.len());
        r.read_to_end(&mut back).await.unwrap();
        writer.await.unwrap();

        assert_eq!(back.len(), data.len());
        assert!(back == data, "the echoed bytes differ from those sent");
        let stats = proxy.stats();
        assert_eq!(stats.bytes_up, data.len() as u64);
        assert_eq!(stats.bytes_down, data.len() as u64);
        assert_eq!(stats.accepted, 1);
        proxy.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_is_passed_on_and_the_other_direction_keeps_flowing() {
    timeout(LIMIT, async {
        // The server reads until the client's FIN, then answers with what it counted: it can only
        // answer if the proxy passed the FIN on and still carries bytes back.
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let upstream = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(format!("got {} bytes", got.len()).as_bytes())
                .await
                .unwrap();
            s.shutdown().await.unwrap();
        });
        let proxy = proxy_to(upstream, 1).await;
        let mut client = connect(proxy.local_addr()).await;
        client.write_all(&[7u8; 100_000]).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "got 100000 bytes");
        proxy.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_an_open_connection_and_clearing_it_restores_speed() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 1).await;
        let mut client = connect(proxy.local_addr()).await;
        round_trip(&mut client, b"warm").await.unwrap();

        proxy
            .set_fault(ProxyFault::Latency {
                latency: Duration::from_millis(200),
                jitter: Duration::ZERO,
            })
            .unwrap();
        let started = Instant::now();
        assert_eq!(round_trip(&mut client, b"slow").await.unwrap(), b"slow");
        let slow = started.elapsed();
        // 200 ms on the way up and 200 ms on the way back.
        assert!(
            slow >= Duration::from_millis(390),
            "round trip took {slow:?}"
        );

        proxy.clear_fault();
        let started = Instant::now();
        round_trip(&mut client, b"fast").await.unwrap();
        let fast = started.elapsed();
        assert!(
            fast < Duration::from_millis(150),
            "round trip took {fast:?}"
        );
        proxy.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spreads_latency_around_its_mean() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 3).await;
        proxy
            .set_fault(ProxyFault::Latency {
                latency: Duration::from_millis(60),
                jitter: Duration::from_millis(50),
            })
            .unwrap();
        let mut client = connect(proxy.local_addr()).await;
        let mut times = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            round_trip(&mut client, b"x").await.unwrap();
            times.push(started.elapsed());
        }
        let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        // Two chunks of 10..110 ms each: the round trips cannot all take the same time.
        assert!(*min >= Duration::from_millis(19), "{times:?}");
        assert!(*max - *min >= Duration::from_millis(20), "{times:?}");
        proxy.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_holds_bytes_until_it_is_cleared_and_then_nothing_is_lost() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 1).await;
        let mut open = connect(proxy.local_addr()).await;
        round_trip(&mut open, b"warm").await.unwrap();

        proxy.set_fault(ProxyFault::Stall).unwrap();
        open.write_all(b"held").await.unwrap();
        let mut back = [0u8; 4];
        let waited = timeout(Duration::from_millis(300), open.read_exact(&mut back)).await;
        assert!(waited.is_err(), "bytes went through a stalled connection");

        // A new connection is accepted but does not reach the upstream.
        let mut fresh = connect(proxy.local_addr()).await;
        fresh.write_all(b"late").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(echo.accepted.load(Ordering::SeqCst), 1);

        proxy.clear_fault();
        timeout(Duration::from_secs(5), open.read_exact(&mut back))
            .await
            .expect("the open connection did not resume")
            .unwrap();
        assert_eq!(&back, b"held");
        timeout(Duration::from_secs(5), fresh.read_exact(&mut back))
            .await
            .expect("the new connection did not resume")
            .unwrap();
        assert_eq!(&back, b"late");
        assert_eq!(echo.accepted.load(Ordering::SeqCst), 2);
        proxy.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_refuses_new_connections_and_cuts_open_ones_until_cleared() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 1).await;
        let mut open = connect(proxy.local_addr()).await;
        round_trip(&mut open, b"warm").await.unwrap();

        proxy.set_fault(ProxyFault::Down).unwrap();
        let mut buf = [0u8; 16];
        let read = timeout(Duration::from_secs(5), open.read(&mut buf))
            .await
            .expect("the open connection was not cut");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "expected EOF or an error, got {read:?}"
        );

        // The listener closes asynchronously; give it a moment before expecting refusals.
        let mut refused = false;
        for _ in 0..50 {
            match TcpStream::connect(proxy.local_addr()).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert!(refused, "new connections were not refused");

        proxy.clear_fault();
        let mut back_up = None;
        for _ in 0..50 {
            let answer = match TcpStream::connect(proxy.local_addr()).await {
                Ok(mut s) => round_trip(&mut s, b"back").await.ok(),
                Err(_) => None,
            };
            if answer.is_some() {
                back_up = answer;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(back_up.as_deref(), Some(&b"back"[..]));
        proxy.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_gives_clients_connection_reset_on_open_and_new_connections() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 1).await;
        let mut open = connect(proxy.local_addr()).await;
        round_trip(&mut open, b"warm").await.unwrap();

        proxy.set_fault(ProxyFault::Reset).unwrap();
        let mut buf = [0u8; 16];
        let read = timeout(Duration::from_secs(5), open.read(&mut buf))
            .await
            .expect("the open connection was not reset");
        assert_eq!(
            read.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        );

        // The reset can come so soon that `connect` itself reports it.
        let answer = timeout(Duration::from_secs(5), async {
            let mut fresh = TcpStream::connect(proxy.local_addr()).await?;
            round_trip(&mut fresh, b"new").await
        })
        .await
        .expect("the new connection was not reset");
        let kind = answer.unwrap_err().kind();
        assert!(
            matches!(
                kind,
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{kind:?}"
        );
        proxy.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_limit_slows_a_transfer_down() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 1).await;
        let payload = vec![1u8; 100 * 1024];
        let addr = proxy.local_addr();
        let transfer = |payload: Vec<u8>| async move {
            let stream = connect(addr).await;
            let (mut r, mut w) = stream.into_split();
            let started = Instant::now();
            let writer = tokio::spawn(async move {
                w.write_all(&payload).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            (started.elapsed(), back.len())
        };

        let (unlimited, len) = transfer(payload.clone()).await;
        assert_eq!(len, payload.len());
        proxy
            .set_fault(ProxyFault::Bandwidth {
                bytes_per_sec: 100 * 1024,
            })
            .unwrap();
        let (limited, len) = transfer(payload.clone()).await;
        assert_eq!(len, payload.len(), "bytes were lost under the limit");
        // 100 KiB at 100 KiB/s takes about a second (both directions pace concurrently).
        assert!(limited >= Duration::from_millis(800), "took {limited:?}");
        assert!(
            unlimited < Duration::from_millis(400),
            "took {unlimited:?} without a limit"
        );
        proxy.stop().await;
    })
    .await
    .unwrap();
}

/// Opens `n` connections one after the other (each proven accepted by a round trip, so that
/// connection numbers follow the order), sets `spec`, and returns which connections were cut.
async fn cut_connections(seed: u64, n: usize, spec: FaultSpec) -> Vec<usize> {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.addr, seed).await;
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut s = connect(proxy.local_addr()).await;
        round_trip(&mut s, b"hi").await.unwrap();
        streams.push(s);
    }
    proxy.set_fault(spec).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut cut = Vec::new();
    for (i, s) in streams.iter_mut().enumerate() {
        let alive = timeout(Duration::from_millis(500), round_trip(s, b"ok")).await;
        if !matches!(alive, Ok(Ok(_))) {
            cut.push(i);
        }
    }
    proxy.stop().await;
    cut
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fraction_picks_the_same_connections_for_the_same_seed() {
    timeout(LIMIT, async {
        let spec = ProxyFault::Down.on_fraction(0.5);
        let first = cut_connections(7, 20, spec.clone()).await;
        let second = cut_connections(7, 20, spec.clone()).await;
        assert_eq!(first, second);
        assert!(
            !first.is_empty() && first.len() < 20,
            "a half should be neither none nor all: {first:?}"
        );
        let predicted: Vec<usize> = (0..20).filter(|&i| spec.affects(7, i as u64)).collect();
        assert_eq!(first, predicted);
        let other_seed: Vec<usize> = (0..20).filter(|&i| spec.affects(8, i as u64)).collect();
        assert_ne!(first, other_seed, "the seed should matter");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_fault_leaves_no_fault_behind() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 1).await;
        assert_eq!(proxy.active_fault(), None);
        proxy
            .set_fault(ProxyFault::Stall.on_fraction(0.25))
            .unwrap();
        assert_eq!(
            proxy.active_fault(),
            Some(FaultSpec {
                fault: ProxyFault::Stall,
                fraction: 0.25
            })
        );
        proxy.clear_fault();
        assert_eq!(proxy.active_fault(), None);
        let mut s = connect(proxy.local_addr()).await;
        assert_eq!(round_trip(&mut s, b"free").await.unwrap(), b"free");
        proxy.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_proxy_closes_its_connections_and_its_port() {
    timeout(LIMIT, async {
        let echo = echo_server().await;
        let proxy = proxy_to(echo.addr, 1).await;
        let addr = proxy.local_addr();
        let mut open = connect(addr).await;
        round_trip(&mut open, b"warm").await.unwrap();
        assert_eq!(proxy.stats().active, 1);
        proxy.stop().await;
        let mut buf = [0u8; 4];
        assert!(matches!(open.read(&mut buf).await, Ok(0) | Err(_)));
        assert!(TcpStream::connect(addr).await.is_err());
    })
    .await
    .unwrap();
}

#[test]
fn faults_are_read_from_scenario_toml() {
    let spec: FaultSpec = toml::from_str(
        "kind = \"latency\"\nlatency = \"200ms\"\njitter = \"50ms\"\nfraction = 0.5",
    )
    .unwrap();
    assert_eq!(
        spec,
        ProxyFault::Latency {
            latency: Duration::from_millis(200),
            jitter: Duration::from_millis(50)
        }
        .on_fraction(0.5)
    );
    let all: FaultSpec = toml::from_str("kind = \"down\"").unwrap();
    assert_eq!(all, ProxyFault::Down.into());
    assert!(toml::from_str::<FaultSpec>("kind = \"latency\"\nlatency = \"soon\"").is_err());
    assert!(toml::from_str::<FaultSpec>("kind = \"stall\"\nlatenxy = \"1s\"").is_err());
    assert!(toml::from_str::<FaultSpec>("kind = \"melt\"").is_err());
}

#[tokio::test]
async fn impossible_faults_are_refused() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.addr, 1).await;
    assert!(proxy.set_fault(ProxyFault::Stall.on_fraction(1.5)).is_err());
    assert!(
        proxy
            .set_fault(ProxyFault::Bandwidth { bytes_per_sec: 0 })
            .is_err()
    );
    assert_eq!(proxy.active_fault(), None);
}

/// Moves everything from one socket to another through `carrier`, as a proxy direction does.
async fn carry(mut carrier: carrier::Carrier) -> bool {
    let (mut writer, mut from) = socket_pair().await;
    let (mut to, mut reader) = socket_pair().await;
    let mut data = vec![0u8; 3 * 1024 * 1024 + 17];
    ChaCha8Rng::seed_from_u64(9).fill_bytes(&mut data);
    let sent = data.clone();
    let write = tokio::spawn(async move {
        writer.write_all(&sent).await.unwrap();
        writer.shutdown().await.unwrap();
    });
    let read = tokio::spawn(async move {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        got
    });
    let (mut from_read, _) = from.split();
    let (_, mut to_write) = to.split();
    loop {
        let n = carrier.fill(&mut from_read, usize::MAX).await.unwrap();
        if n == 0 {
            break;
        }
        carrier.drain(&mut to_write, n).await.unwrap();
    }
    to_write.shutdown().await.unwrap();
    write.await.unwrap();
    read.await.unwrap() == data
}

async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_carriers_pass_bytes_on_unchanged() {
    timeout(LIMIT, async {
        assert!(carry(carrier::Carrier::new()).await, "the default carrier");
        assert!(
            carry(carrier::Carrier::buffer()).await,
            "the buffer carrier"
        );
    })
    .await
    .unwrap();
}
