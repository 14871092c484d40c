//! fivehundred: injects the real causes of HTTP 500 errors into a service, drives load through
//! it, and checks that its error handling, graceful degradation and alerting respond correctly.
//!
//! # Layout
//!
//! - [`record`]: what a run records (requests, probes, metrics, logs, events); checks and reports
//!   read only this.
//! - [`proxy`]: the TCP fault proxy placed in front of the database and each dependency.
//! - [`load`]: the open-loop load generator.
//! - [`payments`]: the payments dependency the lab serves to the target.
//! - [`monitoring`]: real Prometheus and Alertmanager for the lab, and the webhook that records
//!   alert notifications.

pub mod load;
pub mod monitoring;
pub mod payments;
pub mod proxy;
pub mod record;
