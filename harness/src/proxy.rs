//! The TCP fault proxy.
