//! Failpoints: named places where the harness can inject a fault in-process (a panic, an
//! error, a delay), through the admin API.
//!
//! Actions are the `fail` crate's grammar: `panic`, `return` (the code answers an internal
//! error), `5%return`, `sleep(200)`, `off`, ... The failpoints are always compiled in (the
//! workspace enables `fail/failpoints`), since the binary the harness runs must have them;
//! when none is set, a check is one read-lock of an empty map.

use crate::error::AppError;

/// Every failpoint in the service.
pub const ALL: [&str; 6] = [
    "list_products",
    "get_product",
    "create_order",
    "get_order",
    "receipt_worker",
    "payments_charge",
];

/// Evaluates failpoint `name`: `Err` for `return`, a panic for `panic`, a pause for `sleep`.
///
/// `fail` implements `sleep` with `std::thread::sleep`, which would freeze a tokio worker
/// thread and every task queued behind it (the admin listener included). So when any failpoint
/// is set, the check runs in `block_in_place`, which hands this thread's other tasks to another
/// worker first. The sleeping request itself still cannot be interrupted by the request
/// deadline: like any blocking call in async code, it holds its task until it returns.
/// (`block_in_place` needs the multi-thread runtime, which the binary and the tests use.)
pub fn check(name: &'static str) -> Result<(), AppError> {
    let eval = || {
        fail::fail_point!(name, |_| Err(AppError::Injected(name)));
        Ok(())
    };
    if fail::list().is_empty() {
        return Ok(());
    }
    tokio::task::block_in_place(eval)
}
