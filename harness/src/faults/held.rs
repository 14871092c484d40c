//! What an injected fault holds until its revert, typed by its kind: a [`Slot`] pairs a fault's
//! parameters with the kind's `Held` value (a session with a lock in its open transaction, the
//! sessions that fill the server, a helper process, an extra load), and [`Armed`] lets the
//! injector drive any kind's slot without knowing the kind.
//!
//! Dropping a slot drops what it holds, which closes sessions and stops helpers: when a revert
//! never ran (a panic, a lab torn down early), that is the last line of defence, and the journal
//! covers a crash.

use futures::future::BoxFuture;

use super::{FaultError, FaultKind};
use crate::lab::Lab;

/// A fault kind's slot, with its kind erased.
pub(crate) trait Armed: Send {
    fn inject<'a>(&'a mut self, lab: &'a Lab) -> BoxFuture<'a, Result<(), FaultError>>;
    fn revert<'a>(&'a mut self, lab: &'a Lab) -> BoxFuture<'a, Result<(), FaultError>>;
}

/// One fault's parameters and what its injection holds.
pub(crate) struct Slot<K: FaultKind> {
    fault: K,
    held: Option<K::Held>,
}

impl<K: FaultKind> Slot<K> {
    pub(crate) fn boxed(fault: K) -> Box<dyn Armed> {
        Box::new(Slot { fault, held: None })
    }
}

impl<K: FaultKind> Armed for Slot<K> {
    fn inject<'a>(&'a mut self, lab: &'a Lab) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(self.fault.inject(lab, &mut self.held))
    }

    fn revert<'a>(&'a mut self, lab: &'a Lab) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(self.fault.revert(lab, &mut self.held))
    }
}
