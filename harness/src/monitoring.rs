//! Real Prometheus and Alertmanager for the lab.
