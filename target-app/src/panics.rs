//! Turning a panic into something that can be logged: its message, where it happened, and a
//! backtrace.
//!
//! The backtrace only exists while the panicking thread unwinds, so a panic hook captures it
//! into a thread-local; whoever catches the panic on that same thread (`catch-panic` for a
//! handler, the worker supervisor for a task) takes it from there. The hook then calls the
//! previous one, so a panic nobody catches still leaves Rust's usual note on stderr.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::sync::{Arc, Once};

/// A caught panic.
#[derive(Debug, Clone)]
pub struct PanicReport {
    pub message: String,
    pub location: String,
    /// Shared because the report travels in response extensions, which must be `Clone`.
    pub backtrace: Arc<Backtrace>,
}

impl std::fmt::Display for PanicReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panicked at {}: {}", self.location, self.message)
    }
}

thread_local! {
    static LAST: RefCell<Option<(String, Backtrace)>> = const { RefCell::new(None) };
}

/// Installs the capturing hook once per process.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| l.to_string())
                .unwrap_or_else(|| "unknown location".into());
            LAST.with(|last| *last.borrow_mut() = Some((location, Backtrace::force_capture())));
            previous(info);
        }));
    });
}

/// Builds the report of the panic whose payload was just caught on this thread.
pub fn report(payload: &(dyn Any + Send)) -> PanicReport {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    let (location, backtrace) = LAST
        .with(|last| last.borrow_mut().take())
        .unwrap_or_else(|| ("unknown location".into(), Backtrace::disabled()));
    PanicReport {
        message,
        location,
        backtrace: Arc::new(backtrace),
    }
}
