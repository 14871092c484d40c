//! Taking the lab down, on every way out of `lab up`: its processes stopped, its run directory
//! removed, and its journal closed unless a fault is left for `fivehundred recover`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::control::GameDay;
use crate::lab::dismantle;

/// Stops the lab's processes and removes its files once nothing else holds the game day (the
/// API's last handler may still be finishing). False if the lab could not be taken down here:
/// its processes still end with this one, and `recover` removes the rest.
pub(super) async fn take_down(gd: Arc<GameDay>) -> bool {
    let mut gd = gd;
    let deadline = Instant::now() + Duration::from_secs(10);
    let owned = loop {
        match Arc::try_unwrap(gd) {
            Ok(owned) => break owned,
            Err(shared) if Instant::now() < deadline => {
                gd = shared;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {
                eprintln!("warning: the lab is still held by a task and cannot be taken down here");
                return false;
            }
        }
    };
    let unreverted = owned.unreverted();
    let (lab, journal) = owned.into_parts();
    let run_dir = lab.run_dir.clone();
    // A fault that could not be reverted keeps the journal, for `fivehundred recover`.
    dismantle(Some(lab), &run_dir, journal, unreverted.is_empty()).await;
    true
}
