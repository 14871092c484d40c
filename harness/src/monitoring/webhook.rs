//! The webhook Alertmanager notifies: records every alert of every notification with the moment
//! it arrived, which is what `fires`/`resolves` checks and time-to-detect are measured from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Whether a notification says an alert started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl std::fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert in one Alertmanager notification, as the harness received it.
///
/// Alertmanager sends a group's alerts again whenever the group changes and every
/// `repeat_interval`, so the same alert can appear in several notifications: the first `firing`
/// one is when it was detected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertNotification {
    /// When the webhook received it, in ms from the start of the run.
    pub at_ms: f64,
    /// The same moment as an `Instant`, for waiting on deadlines; not part of a journal.
    #[serde(skip)]
    pub received: Option<Instant>,
    /// The `alertname` label.
    pub alert: String,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// When Prometheus saw the alert start firing (after its `for`).
    pub starts_at: Option<DateTime<Utc>>,
    /// When it resolved; for a firing alert, when it will be considered resolved unless
    /// Prometheus sends it again. `None` where Alertmanager sent its zero time.
    pub ends_at: Option<DateTime<Utc>>,
    /// Alertmanager's identity of the alert (a hash of its labels): pairs a firing with its
    /// resolution.
    pub fingerprint: String,
}

/// Alertmanager's webhook payload (version 4); only what is recorded.
#[derive(Deserialize)]
struct Payload {
    alerts: Vec<PayloadAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
    #[serde(default)]
    fingerprint: String,
}

/// Alertmanager writes "no time" as Go's zero time, year 1.
fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    (t.year() > 1).then_some(t)
}

/// What the webhook has received, shared with its handler.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    notifications: Mutex<Vec<AlertNotification>>,
    /// Wakes waiters when a notification arrives.
    arrived: Notify,
}

impl Inbox {
    pub(crate) fn snapshot(&self) -> Vec<AlertNotification> {
        self.notifications
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    pub(crate) fn arrived(&self) -> &Notify {
        &self.arrived
    }
}

#[derive(Clone)]
struct WebhookState {
    inbox: Arc<Inbox>,
    run_start: Instant,
}

async fn receive(State(state): State<WebhookState>, Json(payload): Json<Payload>) -> StatusCode {
    let received = Instant::now();
    let at_ms = received.duration_since(state.run_start).as_secs_f64() * 1000.0;
    let recorded = payload.alerts.into_iter().filter_map(|a| {
        let status = match a.status.as_str() {
            "firing" => AlertStatus::Firing,
            "resolved" => AlertStatus::Resolved,
            _ => return None,
        };
        Some(AlertNotification {
            at_ms,
            received: Some(received),
            alert: a.labels.get("alertname").cloned().unwrap_or_default(),
            status,
            starts_at: timestamp(&a.starts_at),
            ends_at: timestamp(&a.ends_at),
            labels: a.labels,
            annotations: a.annotations,
            fingerprint: a.fingerprint,
        })
    });
    if let Ok(mut v) = state.inbox.notifications.lock() {
        v.extend(recorded);
    }
    state.inbox.arrived.notify_waiters();
    StatusCode::OK
}

/// The running webhook server.
#[derive(Debug)]
pub(crate) struct Webhook {
    pub(crate) addr: SocketAddr,
    pub(crate) inbox: Arc<Inbox>,
    shutdown: CancellationToken,
}

impl Webhook {
    /// Serves `POST /alerts` on a free loopback port.
    pub(crate) async fn start(run_start: Instant) -> std::io::Result<Self> {
        let inbox = Arc::new(Inbox::default());
        let app = Router::new()
            .route("/alerts", post(receive))
            .with_state(WebhookState {
                inbox: inbox.clone(),
                run_start,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Self {
            addr,
            inbox,
            shutdown,
        })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn every_alert_of_a_notification_is_recorded_with_its_arrival() {
        let start = Instant::now();
        let hook = Webhook::start(start).await.unwrap();
        let body = serde_json::json!({
            "version": "4",
            "status": "firing",
            "receiver": "harness",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "TargetDown", "severity": "critical"},
                    "annotations": {"summary": "down"},
                    "startsAt": "2025-01-02T03:04:05.5Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": "abc"
                },
                {
                    "status": "resolved",
                    "labels": {"alertname": "CircuitOpen", "breaker": "database"},
                    "annotations": {},
                    "startsAt": "2025-01-02T03:04:05Z",
                    "endsAt": "2025-01-02T03:05:05Z",
                    "fingerprint": "def"
                }
            ]
        });
        let resp = reqwest::Client::new()
            .post(hook.url())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let got = hook.inbox.snapshot();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].alert, "TargetDown");
        assert_eq!(got[0].status, AlertStatus::Firing);
        assert_eq!(got[0].ends_at, None);
        assert_eq!(
            got[0].starts_at.unwrap().to_rfc3339(),
            "2025-01-02T03:04:05.500+00:00"
        );
        assert_eq!(got[1].status, AlertStatus::Resolved);
        assert_eq!(got[1].labels["breaker"], "database");
        assert!(got[1].ends_at.is_some());
        assert!(got[0].at_ms >= 0.0 && got[0].at_ms < 10_000.0);
        let json = serde_json::to_value(&got[0]).unwrap();
        assert_eq!(json["status"], "firing");
        assert!(json.get("received").is_none());
    }
}
