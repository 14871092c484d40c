//! Every metric the service exports, in one registry served on the admin listener.
//!
//! The names and labels are part of the target contract (ARCHITECTURE.md): the alert rules in
//! `alerts/` are written against them. Each instance of the app has its own registry rather
//! than the process-global default, so several apps in one test process do not share counters.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub panics: IntCounterVec,
    pub db_errors: IntCounterVec,
    pub db_pool_connections: IntGaugeVec,
    pub circuit_state: IntGaugeVec,
    pub stale_cache_serves: IntCounter,
    pub outbox_backlog: IntGauge,
    pub worker_restarts: IntCounterVec,
    pub disk_write_errors: IntCounterVec,
    pub load_shed: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    pub schema_ok: IntGauge,
    pub payments_errors: IntCounterVec,
    pub ready: IntGauge,
}

/// Label values known in advance. Their series are created at zero so that `rate()` and
/// `increase()` see the first error instead of a series appearing out of nothing.
pub const DB_ERROR_KINDS: [&str; 8] = [
    "pool_timeout",
    "statement_timeout",
    "lock_timeout",
    "connection",
    "too_many_connections",
    "undefined_column",
    "not_null_violation",
    "other",
];
pub const ERRNO_LABELS: [&str; 5] = ["ENOSPC", "EACCES", "EROFS", "EMFILE", "other"];
pub const PAYMENTS_ERROR_KINDS: [&str; 5] = [
    "timeout",
    "connect",
    "status",
    "invalid_response",
    "circuit_open",
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("metric names are unique");
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };

        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "app_http_request_duration_seconds",
                "Time from request to response headers",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["route", "method"],
        )
        .expect("valid metric");
        reg(Box::new(http_duration.clone()));
        let stale_cache_serves = IntCounter::new(
            "app_stale_cache_serves_total",
            "Catalogue answers served from a stale cache entry",
        )
        .expect("valid metric");
        reg(Box::new(stale_cache_serves.clone()));
        // Resident memory, CPU and open fds of this process (`process_*`).
        reg(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));

        let m = Metrics {
            http_requests: counter_vec(
                "app_http_requests_total",
                "HTTP responses by route, method and status",
                &["route", "method", "status"],
            ),
            http_duration,
            panics: counter_vec("app_panics_total", "Panics caught", &["kind"]),
            db_errors: counter_vec("app_db_errors_total", "Database errors by kind", &["kind"]),
            db_pool_connections: gauge_vec(
                "app_db_pool_connections",
                "Connections in the pool by state",
                &["state"],
            ),
            circuit_state: gauge_vec(
                "app_circuit_state",
                "Circuit breaker state: 0 closed, 1 half-open, 2 open",
                &["breaker"],
            ),
            stale_cache_serves,
            outbox_backlog: gauge("app_outbox_backlog", "Receipts waiting to be written"),
            worker_restarts: counter_vec(
                "app_worker_restarts_total",
                "Background workers restarted after a panic",
                &["worker"],
            ),
            disk_write_errors: counter_vec(
                "app_disk_write_errors_total",
                "Failed receipt writes by errno",
                &["errno"],
            ),
            load_shed: counter_vec(
                "app_load_shed_total",
                "Requests shed by reason",
                &["reason"],
            ),
            config_reloads: counter_vec(
                "app_config_reloads_total",
                "Config file reloads by result",
                &["result"],
            ),
            config_last_reload_successful: gauge(
                "app_config_last_reload_successful",
                "1 when the last config reload succeeded (or none was attempted)",
            ),
            schema_ok: gauge(
                "app_schema_ok",
                "1 when the database schema is at the expected migration",
            ),
            payments_errors: counter_vec(
                "app_payments_errors_total",
                "Failed payments calls by kind",
                &["kind"],
            ),
            ready: gauge("app_ready", "1 while /readyz passes"),
            registry,
        };

        for kind in ["handler", "task"] {
            m.panics.with_label_values(&[kind]);
        }
        for kind in DB_ERROR_KINDS {
            m.db_errors.with_label_values(&[kind]);
        }
        for breaker in ["database", "payments"] {
            m.circuit_state.with_label_values(&[breaker]);
        }
        for errno in ERRNO_LABELS {
            m.disk_write_errors.with_label_values(&[errno]);
        }
        for reason in ["concurrency", "memory", "descriptors"] {
            m.load_shed.with_label_values(&[reason]);
        }
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        for kind in PAYMENTS_ERROR_KINDS {
            m.payments_errors.with_label_values(&[kind]);
        }
        m.worker_restarts.with_label_values(&["receipts"]);
        m.config_last_reload_successful.set(1);
        m
    }

    /// Everything in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
