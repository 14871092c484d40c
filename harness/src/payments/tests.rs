//! Tests of the payments stub over real loopback HTTP.

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

const ORDER: &str = "0b5e7c1e-8a40-4a0e-9a53-1c9f6f1d2a11";

async fn post_charge(
    base: &str,
    key: Option<&str>,
    order_id: &str,
    amount: i64,
) -> reqwest::Result<reqwest::Response> {
    let mut req = client()
        .post(format!("{base}/charges"))
        .json(&serde_json::json!({"order_id": order_id, "amount_cents": amount}));
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await
}

async fn json(resp: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_healthy_stub_captures_a_charge_and_replays_it_for_the_same_key() {
    let stub = PaymentsStub::start(1).await.unwrap();
    let first = post_charge(&stub.url(), Some(ORDER), ORDER, 1250)
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    assert_eq!(first["status"], "captured");
    let again = json(
        post_charge(&stub.url(), Some(ORDER), ORDER, 1250)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again["id"], first["id"]);

    let ledger = stub.charges();
    assert_eq!(ledger.count(), 1);
    assert_eq!(ledger.requests, 2);
    let charge = ledger.by_key(ORDER).unwrap();
    assert_eq!(charge.requests, 2);
    assert_eq!(charge.id.to_string(), first["id"].as_str().unwrap());
    assert!(ledger.duplicate_orders().is_empty());
    stub.stop().await;
}

#[tokio::test]
async fn charges_without_a_key_are_each_new_and_show_up_as_duplicates() {
    let stub = PaymentsStub::start(1).await.unwrap();
    for _ in 0..2 {
        let r = post_charge(&stub.url(), None, ORDER, 500).await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let ledger = stub.charges();
    assert_eq!(ledger.count(), 2);
    assert_eq!(ledger.duplicate_orders(), vec![(ORDER, 2)]);
    stub.stop().await;
}

#[tokio::test]
async fn a_key_reused_for_another_payment_is_refused() {
    let stub = PaymentsStub::start(1).await.unwrap();
    let url = stub.url();
    assert_eq!(
        post_charge(&url, Some("k1"), ORDER, 500)
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        post_charge(&url, Some("k1"), ORDER, 501)
            .await
            .unwrap()
            .status(),
        409
    );
    assert_eq!(stub.charges().count(), 1);
    stub.stop().await;
}

#[tokio::test]
async fn malformed_charges_are_refused_with_422() {
    let stub = PaymentsStub::start(1).await.unwrap();
    let url = stub.url();
    assert_eq!(
        post_charge(&url, None, "not-a-uuid", 500)
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        post_charge(&url, None, ORDER, 0).await.unwrap().status(),
        422
    );
    let r = client()
        .post(format!("{url}/charges"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert_eq!(stub.charges().count(), 0);
    stub.stop().await;
}

#[tokio::test]
async fn the_error_behaviour_answers_its_status_and_charges_nothing() {
    let stub = PaymentsStub::start(1).await.unwrap();
    stub.set_behaviour(PaymentsBehaviour::Error { status: 503 })
        .unwrap();
    let r = post_charge(&stub.url(), Some(ORDER), ORDER, 500)
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(json(r).await["status"], 503);

    stub.set_behaviour(PaymentsBehaviour::Error { status: 500 })
        .unwrap();
    let r = post_charge(&stub.url(), Some(ORDER), ORDER, 500)
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(stub.charges().count(), 0);
    assert_eq!(stub.charges().requests, 2);

    // Back to healthy, the same key charges once.
    stub.set_behaviour(PaymentsBehaviour::Healthy).unwrap();
    let r = post_charge(&stub.url(), Some(ORDER), ORDER, 500)
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(stub.charges().count(), 1);
    stub.stop().await;
}

#[tokio::test]
async fn garbage_is_a_200_whose_body_is_not_json() {
    let stub = PaymentsStub::start(1).await.unwrap();
    stub.set_behaviour(PaymentsBehaviour::Garbage).unwrap();
    let r = post_charge(&stub.url(), Some(ORDER), ORDER, 500)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    assert_eq!(stub.charges().count(), 0);
    stub.stop().await;
}

#[tokio::test]
async fn slow_answers_only_after_the_delay() {
    let stub = PaymentsStub::start(1).await.unwrap();
    stub.set_behaviour(PaymentsBehaviour::Slow {
        delay: Duration::from_millis(300),
    })
    .unwrap();
    let started = Instant::now();
    let r = post_charge(&stub.url(), Some(ORDER), ORDER, 500)
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(stub.charges().count(), 1);
    stub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_answers_nothing_until_the_behaviour_changes() {
    timeout(LIMIT, async {
        let stub = PaymentsStub::start(1).await.unwrap();
        stub.set_behaviour(PaymentsBehaviour::Hang).unwrap();
        let url = stub.url();
        let mut pending =
            tokio::spawn(async move { post_charge(&url, Some(ORDER), ORDER, 500).await });
        assert!(
            timeout(Duration::from_millis(500), &mut pending)
                .await
                .is_err(),
            "a hanging stub answered"
        );
        assert_eq!(stub.charges().requests, 1);

        stub.set_behaviour(PaymentsBehaviour::Healthy).unwrap();
        let r = timeout(Duration::from_secs(5), pending)
            .await
            .expect("the request still hangs after the behaviour changed")
            .unwrap()
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(stub.charges().count(), 1);
        stub.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_hanging_requests() {
    timeout(LIMIT, async {
        let stub = PaymentsStub::start(1).await.unwrap();
        stub.set_behaviour(PaymentsBehaviour::Hang).unwrap();
        let url = stub.url();
        let pending = tokio::spawn(async move { post_charge(&url, Some(ORDER), ORDER, 500).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        stub.stop().await;
        assert!(started.elapsed() < Duration::from_secs(3));
        // Answered 503 or cut: either way, not charged and not hanging.
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
async fn the_same_seed_issues_the_same_charge_ids() {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let stub = PaymentsStub::start(99).await.unwrap();
        let r = json(
            post_charge(&stub.url(), Some(ORDER), ORDER, 500)
                .await
                .unwrap(),
        )
        .await;
        ids.push(r["id"].as_str().unwrap().to_string());
        stub.stop().await;
    }
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn an_error_behaviour_must_have_an_error_status() {
    let stub = PaymentsStub::start(1).await.unwrap();
    assert!(
        stub.set_behaviour(PaymentsBehaviour::Error { status: 200 })
            .is_err()
    );
    assert_eq!(stub.behaviour(), PaymentsBehaviour::Healthy);
    stub.stop().await;
}

#[test]
fn behaviours_are_read_from_scenario_toml() {
    let b: PaymentsBehaviour = toml::from_str("kind = \"slow\"\ndelay = \"3s\"").unwrap();
    assert_eq!(
        b,
        PaymentsBehaviour::Slow {
            delay: Duration::from_secs(3)
        }
    );
    let b: PaymentsBehaviour = toml::from_str("kind = \"error\"\nstatus = 503").unwrap();
    assert_eq!(b, PaymentsBehaviour::Error { status: 503 });
    assert!(toml::from_str::<PaymentsBehaviour>("kind = \"error\"\nstatus = 503\nx = 1").is_err());
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
    assert!(toml::from_str::<PaymentsBehaviour>("kind = \"hang\"\nstatus = 503").is_err());
    let slow = PaymentsBehaviour::Slow {
        delay: Duration::from_secs(3),
    };
    assert_eq!(RawBehaviour::from(&slow).build(), slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_proxy_in_front_of_the_stub_adds_network_faults() {
    timeout(LIMIT, async {
        let stub = PaymentsStub::start(1).await.unwrap();
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), stub.addr(), 1)
            .await
            .unwrap();
        let url = format!("http://{}", proxy.local_addr());

        let r = post_charge(&url, Some("a"), ORDER, 500).await.unwrap();
        assert_eq!(r.status(), 201);

        // The network is down: the client cannot reach the stub.
        proxy.set_fault(ProxyFault::Down).unwrap();
        let mut failed = false;
        for _ in 0..20 {
            if post_charge(&url, Some("b"), ORDER, 500).await.is_err() {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(failed, "requests got through a proxy that is down");
        proxy.clear_fault();

        // The stub's own fault shows through the proxy.
        stub.set_behaviour(PaymentsBehaviour::Error { status: 500 })
            .unwrap();
        let mut status = None;
        for _ in 0..20 {
            if let Ok(r) = post_charge(&url, Some("c"), ORDER, 500).await {
                status = Some(r.status().as_u16());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, Some(500));
        assert!(proxy.stats().bytes_up > 0 && proxy.stats().bytes_down > 0);
        assert_eq!(stub.charges().count(), 1);
        proxy.stop().await;
        stub.stop().await;
    })
    .await
    .unwrap();
}
