//! Tests of the HTTP stub over real loopback HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::{Instant, timeout};

use super::*;
use crate::proxy::{Proxy, ProxyFault};

const LIMIT: Duration = Duration::from_secs(20);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A payments-like API: `POST /charges` answers 201 with a charge, `GET /charges/{id}` 200.
async fn stub() -> HttpStub {
    let answer = |method: &str, path: &str, status: u16, body: &str| CannedAnswer {
        method: method.into(),
        path: path.into(),
        status,
        headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
        body: body.into(),
        delay: Duration::ZERO,
    };
    HttpStub::start(vec![
        answer(
            "POST",
            "/charges",
            201,
            r#"{"id": "ch_1", "status": "captured"}"#,
        ),
        answer("GET", "/charges/{id}", 200, r#"{"id": "ch_1"}"#),
    ])
    .await
    .unwrap()
}

fn url(stub: &HttpStub) -> String {
    format!("http://{}", stub.addr())
}

async fn charge(base: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{base}/charges"))
        .json(&serde_json::json!({"amount_cents": 500}))
        .send()
        .await
}

#[tokio::test]
async fn a_healthy_stub_gives_each_request_its_canned_answer() {
    let stub = stub().await;
    let r = charge(&url(&stub)).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "captured");
    let r = client()
        .get(format!("{}/charges/ch_9?x=1", url(&stub)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Nothing canned for this one: a 404 that says so.
    let r = client()
        .delete(format!("{}/charges/ch_9", url(&stub)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("no canned answer for DELETE /charges/ch_9")
    );
    stub.stop().await;
}

#[tokio::test]
async fn a_canned_answer_with_a_delay_is_sent_after_it() {
    let delay = Duration::from_millis(300);
    let stub = HttpStub::start(vec![CannedAnswer {
        method: "POST".into(),
        path: "/charges".into(),
        status: 201,
        headers: BTreeMap::new(),
        body: "{}".into(),
        delay,
    }])
    .await
    .unwrap();
    let started = Instant::now();
    let r = timeout(LIMIT, charge(&url(&stub))).await.unwrap().unwrap();
    assert_eq!(r.status(), 201);
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_error_behaviour_answers_its_status_until_healthy_again() {
    let stub = stub().await;
    stub.set_behaviour(Behaviour::Error { status: 503 })
        .unwrap();
    let r = charge(&url(&stub)).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 503);

    stub.set_behaviour(Behaviour::Error { status: 500 })
        .unwrap();
    let r = charge(&url(&stub)).await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("retry-after").is_none());

    stub.set_behaviour(Behaviour::Healthy).unwrap();
    assert_eq!(charge(&url(&stub)).await.unwrap().status(), 201);
    stub.stop().await;
}

#[tokio::test]
async fn garbage_is_a_200_whose_body_is_not_json() {
    let stub = stub().await;
    stub.set_behaviour(Behaviour::Garbage).unwrap();
    let r = charge(&url(&stub)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    stub.stop().await;
}

#[tokio::test]
async fn slow_answers_only_after_the_delay() {
    let stub = stub().await;
    stub.set_behaviour(Behaviour::Slow {
        delay: Duration::from_millis(300),
    })
    .unwrap();
    let started = Instant::now();
    let r = charge(&url(&stub)).await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(started.elapsed() >= Duration::from_millis(300));
    stub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_answers_nothing_until_the_behaviour_changes() {
    timeout(LIMIT, async {
        let stub = stub().await;
        stub.set_behaviour(Behaviour::Hang).unwrap();
        let base = url(&stub);
        let mut pending = tokio::spawn(async move { charge(&base).await });
        assert!(
            timeout(Duration::from_millis(500), &mut pending)
                .await
                .is_err(),
            "a hanging stub answered"
        );
        stub.set_behaviour(Behaviour::Healthy).unwrap();
        let r = timeout(Duration::from_secs(5), pending)
            .await
            .expect("the request still hangs after the behaviour changed")
            .unwrap()
            .unwrap();
        assert_eq!(r.status(), 201);
        stub.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_hanging_requests() {
    timeout(LIMIT, async {
        let stub = stub().await;
        stub.set_behaviour(Behaviour::Hang).unwrap();
        let base = url(&stub);
        let pending = tokio::spawn(async move { charge(&base).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        stub.stop().await;
        assert!(started.elapsed() < Duration::from_secs(3));
        // Answered 503 or cut: either way, not hanging.
        let done = timeout(Duration::from_secs(5), pending)
            .await
            .unwrap()
            .unwrap();
        if let Ok(r) = done {
            assert_eq!(r.status(), 503);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_error_behaviour_must_have_an_error_status() {
    let stub = stub().await;
    assert!(
        stub.set_behaviour(Behaviour::Error { status: 200 })
            .is_err()
    );
    assert_eq!(stub.behaviour(), Behaviour::Healthy);
    stub.stop().await;
}

#[test]
fn behaviours_are_read_from_scenario_toml() {
    let b: Behaviour = toml::from_str("kind = \"slow\"\ndelay = \"3s\"").unwrap();
    assert_eq!(
        b,
        Behaviour::Slow {
            delay: Duration::from_secs(3)
        }
    );
    let b: Behaviour = toml::from_str("kind = \"error\"\nstatus = 503").unwrap();
    assert_eq!(b, Behaviour::Error { status: 503 });
    assert!(toml::from_str::<Behaviour>("kind = \"error\"\nstatus = 503\nx = 1").is_err());
}

#[test]
fn a_behaviour_table_takes_only_its_own_parameters() {
    let key = |text: &str| {
        let raw: RawBehaviour = toml::from_str(text).unwrap();
        raw.check().err().map(|e| e.key)
    };
    assert_eq!(key("kind = \"healthy\""), None);
    assert_eq!(key("kind = \"slow\"\ndelay = \"3s\""), None);
    assert_eq!(key("kind = \"error\""), Some("kind"));
    assert_eq!(key("kind = \"error\"\nstatus = 302"), Some("status"));
    assert_eq!(key("kind = \"slow\"\ndelay = \"0s\""), Some("delay"));
    assert_eq!(key("kind = \"hang\"\nstatus = 503"), Some("status"));
    assert_eq!(key("kind = \"garbage\"\ndelay = \"1s\""), Some("delay"));
    // The stub's own form is read through the same rules.
    assert!(toml::from_str::<Behaviour>("kind = \"hang\"\nstatus = 503").is_err());
    let slow = Behaviour::Slow {
        delay: Duration::from_secs(3),
    };
    assert_eq!(RawBehaviour::from(&slow).build(), slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_proxy_in_front_of_the_stub_adds_network_faults() {
    timeout(LIMIT, async {
        let stub = stub().await;
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), stub.addr(), 1)
            .await
            .unwrap();
        let base = format!("http://{}", proxy.local_addr());
        assert_eq!(charge(&base).await.unwrap().status(), 201);

        // The network is down: the client cannot reach the stub.
        proxy.set_fault(ProxyFault::Down).unwrap();
        let mut failed = false;
        for _ in 0..20 {
            if charge(&base).await.is_err() {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(failed, "requests got through a proxy that is down");
        proxy.clear_fault();

        // The stub's own fault shows through the proxy.
        stub.set_behaviour(Behaviour::Error { status: 500 })
            .unwrap();
        let mut status = None;
        for _ in 0..20 {
            if let Ok(r) = charge(&base).await {
                status = Some(r.status().as_u16());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, Some(500));
        assert!(proxy.stats().bytes_up > 0 && proxy.stats().bytes_down > 0);
        proxy.stop().await;
        stub.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_stub_passes_requests_on_while_healthy_and_fails_them_as_told() {
    timeout(LIMIT, async {
        let upstream = stub().await;
        let front = HttpStub::forward(&url(&upstream)).await.unwrap();
        let r = client()
            .get(format!("{}/charges/ch_9?x=1", url(&front)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.text().await.unwrap(), r#"{"id": "ch_1"}"#);
        assert_eq!(charge(&url(&front)).await.unwrap().status(), 201);

        front
            .set_behaviour(Behaviour::Error { status: 503 })
            .unwrap();
        assert_eq!(charge(&url(&front)).await.unwrap().status(), 503);
        front.set_behaviour(Behaviour::Garbage).unwrap();
        let body = charge(&url(&front)).await.unwrap().bytes().await.unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        front.set_behaviour(Behaviour::Healthy).unwrap();
        assert_eq!(charge(&url(&front)).await.unwrap().status(), 201);

        // The upstream gone: a 502 that says so.
        let base = url(&upstream);
        upstream.stop().await;
        let r = charge(&url(&front)).await.unwrap();
        assert_eq!(r.status(), 502);
        assert!(r.text().await.unwrap().contains(&base));
        front.stop().await;
    })
    .await
    .unwrap();
}
