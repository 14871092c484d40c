//! The toxics Toxiproxy's clients add to the lab's proxies (through the API `lab up` serves),
//! accounted for like the faults injected by hand: each journalled before it takes effect (one
//! that cannot be journalled is refused, and so is one added while the lab stops), recorded on
//! the timeline and in the log once it does, a fault window until it is gone, listed by
//! `status`; the halt removes them all. They have no deadline: a Toxiproxy client expects a
//! toxic to stay until it removes it.
//!
//! The registry tells [`Watch`] of each change the API makes while it holds its lock, so the
//! changes reach the [`ToxicBook`] in order. The halt removes the toxics itself
//! ([`Registry::clear_toxics`](crate::toxiproxy::registry::Registry::clear_toxics)) and
//! accounts for them here, with its own `by` and `how`.

use std::sync::{Arc, Weak};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Action, FaultWindow, GameDay, HaltOutcome, Who, close_window, lock};
use crate::faults::Injector;
use crate::toxiproxy::model::ToxicSpec;
use crate::toxiproxy::registry::{Removal, ToxicWatch};

/// What `recover` says of a toxic a killed lab left in its journal.
const ORPHAN: &str =
    "nothing to undo: the toxic lived in the lab's proxy, which ended with the lab's process";

/// How a halt's failure to remove a proxy's toxics starts.
pub(super) const TOXICS_FAILED: &str = "the toxics on ";

/// A toxic journalled as `id`, on the lab's proxy `proxy`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Toxic {
    pub id: u64,
    pub proxy: String,
    pub spec: ToxicSpec,
    /// When it took effect (0 while only announced).
    pub injected_at_ms: f64,
}

impl Toxic {
    /// `#7 toxic NAME on PROXY: ...`
    pub fn what(&self) -> String {
        format!("#{} {}", self.id, self.spec.describe(&self.proxy))
    }

    /// Its injection's text on the timeline; its revert's starts with it, which is how reports
    /// pair the two.
    fn label(&self) -> String {
        format!("{} (by {})", self.what(), Who::Toxiproxy)
    }

    fn is(&self, proxy: &str, name: &str) -> bool {
        self.proxy == proxy && self.spec.name == name
    }
}

/// The toxics journalled and about to take effect, and those in effect. The registry keeps one
/// toxic of a name per proxy, and an update announces the new form before the old one goes, so
/// a proxy and a name find one toxic in each list.
#[derive(Debug, Default)]
pub(super) struct ToxicBook {
    pending: Vec<Toxic>,
    active: Vec<Toxic>,
}

impl ToxicBook {
    fn announce(&mut self, toxic: Toxic) {
        self.pending.push(toxic);
    }

    /// The announced toxic `name` on `proxy`, no longer pending.
    fn take_pending(&mut self, proxy: &str, name: &str) -> Option<Toxic> {
        let i = self.pending.iter().position(|t| t.is(proxy, name))?;
        Some(self.pending.remove(i))
    }

    /// The announced toxic `name` on `proxy` is in effect since `at_ms`.
    fn activate(&mut self, proxy: &str, name: &str, at_ms: f64) -> Option<Toxic> {
        let mut toxic = self.take_pending(proxy, name)?;
        toxic.injected_at_ms = at_ms;
        self.active.push(toxic.clone());
        Some(toxic)
    }

    /// The toxic `name` on `proxy` is gone.
    fn deactivate(&mut self, proxy: &str, name: &str) -> Option<Toxic> {
        let i = self.active.iter().position(|t| t.is(proxy, name))?;
        Some(self.active.remove(i))
    }

    /// In the order they took effect.
    pub fn active(&self) -> &[Toxic] {
        &self.active
    }
}

/// A toxic in effect, as `status` shows it: Toxiproxy's fields, its proxy, and since when.
#[derive(Debug, Clone, Serialize)]
pub struct ToxicView {
    pub id: u64,
    /// The whole toxic in a line.
    pub toxic: String,
    pub proxy: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub stream: &'static str,
    pub toxicity: f64,
    pub attributes: Map<String, Value>,
    pub by: Who,
    pub injected_at_ms: f64,
    pub injected_at: String,
}

fn view(t: &Toxic, injected_at: String) -> ToxicView {
    ToxicView {
        id: t.id,
        toxic: t.spec.describe(&t.proxy),
        proxy: t.proxy.clone(),
        name: t.spec.name.clone(),
        type_name: t.spec.type_name.clone(),
        stream: t.spec.stream.as_str(),
        toxicity: t.spec.toxicity,
        attributes: t.spec.attributes.clone(),
        by: Who::Toxiproxy,
        injected_at_ms: t.injected_at_ms,
        injected_at,
    }
}

/// What the journal keeps of a toxic: its proxy and Toxiproxy's JSON of it.
fn journal_spec(proxy: &str, spec: &ToxicSpec) -> Value {
    json!({ "kind": "toxic", "proxy": proxy, "toxic": spec.to_json() })
}

/// The game day as the registry's watcher. Weak: the registry outlives the game day (its API
/// server runs until the process ends), and the teardown needs the game day back whole.
struct Watch(Weak<GameDay>);

impl ToxicWatch for Watch {
    fn adding(&self, proxy: &str, toxic: &ToxicSpec) -> Result<(), String> {
        let gd = self.0.upgrade().ok_or("the lab has stopped")?;
        gd.toxic_adding(proxy, toxic)
    }

    fn abandoned(&self, proxy: &str, toxic: &ToxicSpec) {
        if let Some(gd) = self.0.upgrade() {
            gd.toxic_abandoned(proxy, toxic);
        }
    }

    fn added(&self, proxy: &str, toxic: &ToxicSpec) {
        if let Some(gd) = self.0.upgrade() {
            gd.toxic_added(proxy, toxic);
        }
    }

    fn removed(&self, proxy: &str, toxic: &ToxicSpec, how: Removal) {
        if let Some(gd) = self.0.upgrade() {
            // Out of the book first: the state's lock is not held while the rest is done.
            let gone = lock(&gd.state).toxics.deactivate(proxy, &toxic.name);
            if let Some(t) = gone {
                gd.toxic_gone(&t, Who::Toxiproxy, &how.to_string());
            }
        }
    }
}

impl GameDay {
    /// Makes the Toxiproxy API's toxics journalled and recorded from now on; once, before the
    /// API is served.
    pub fn watch_toxics(self: &Arc<Self>) {
        let watch = Arc::new(Watch(Arc::downgrade(self)));
        if !self.toxiproxy.watch(watch) {
            tracing::warn!("the Toxiproxy API's toxics were watched already");
        }
    }

    /// The toxics in effect, oldest first.
    pub fn toxics(&self) -> Vec<ToxicView> {
        let state = lock(&self.state);
        state
            .toxics
            .active()
            .iter()
            .map(|t| {
                let at = self
                    .wall(t.injected_at_ms)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                view(t, at)
            })
            .collect()
    }

    /// Journals a toxic about to take effect; refused while the lab stops, or when the journal
    /// cannot be written.
    fn toxic_adding(&self, proxy: &str, spec: &ToxicSpec) -> Result<(), String> {
        if lock(&self.state).stopping {
            return Err("the lab is stopping".into());
        }
        let id = Injector::new(&self.lab, &self.journal)
            .journal_entry(&journal_spec(proxy, spec), spec.describe(proxy), ORPHAN)
            .map_err(|e| e.to_string())?;
        lock(&self.state).toxics.announce(Toxic {
            id,
            proxy: proxy.to_string(),
            spec: spec.clone(),
            injected_at_ms: 0.0,
        });
        Ok(())
    }

    /// An announced toxic did not take effect: its journal entry is closed, nothing recorded.
    fn toxic_abandoned(&self, proxy: &str, spec: &ToxicSpec) {
        let abandoned = lock(&self.state).toxics.take_pending(proxy, &spec.name);
        if let Some(t) = abandoned {
            self.journal.reverted(t.id);
        }
    }

    /// An announced toxic took effect: on the timeline, in the log, a fault window.
    fn toxic_added(&self, proxy: &str, spec: &ToxicSpec) {
        let now = self.now_ms();
        let toxic = {
            let mut state = lock(&self.state);
            let Some(t) = state.toxics.activate(proxy, &spec.name, now) else {
                return;
            };
            state.windows.push(FaultWindow {
                id: t.id,
                fault: t.spec.describe(proxy),
                name: None,
                injected_at_ms: now,
                injected_by: Who::Toxiproxy,
                deadline_ms: None,
                reverted_at_ms: None,
                reverted_by: None,
                how: None,
                spec: None,
            });
            t
        };
        Injector::new(&self.lab, &self.journal).record_applied(&toxic.label());
        self.log(
            Action::Inject,
            Who::Toxiproxy,
            Some(toxic.id),
            format!(
                "added {} through the Toxiproxy API; it stays until removed there or halted",
                toxic.what()
            ),
        );
    }

    /// A toxic in effect is gone (out of the book already): journalled as reverted, on the
    /// timeline, its window closed, in the log. `how` completes "reverted ...".
    fn toxic_gone(&self, toxic: &Toxic, by: Who, how: &str) {
        Injector::new(&self.lab, &self.journal)
            .record_reverted(toxic.id, &format!("{}: reverted {how}", toxic.label()));
        let at = self.now_ms();
        close_window(&mut lock(&self.state).windows, toxic.id, at, by, how);
        self.log(
            Action::Revert,
            by,
            Some(toxic.id),
            format!("reverted {} {how}", toxic.what()),
        );
    }

    /// Removes every toxic the Toxiproxy API added, accounting for each as reverted by `by`,
    /// `how`; adds them to what `out` reverted, or the proxies whose toxics stayed to what
    /// failed.
    pub(super) async fn clear_toxics(&self, by: Who, how: &str, out: &mut HaltOutcome) {
        let (gone, failed) = self.toxiproxy.clear_toxics().await;
        for (proxy, spec) in gone {
            let found = lock(&self.state).toxics.deactivate(&proxy, &spec.name);
            let what = match found {
                Some(t) => {
                    self.toxic_gone(&t, by, how);
                    t.what()
                }
                // Added before the lab watched (nothing is): named all the same.
                None => spec.describe(&proxy),
            };
            out.reverted
                .push(format!("{what} (added through the Toxiproxy API)"));
        }
        for (proxy, e) in failed {
            out.failed
                .push(format!("{TOXICS_FAILED}{proxy}: {}", e.message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, latency: u64) -> ToxicSpec {
        ToxicSpec::from_json(&json!({"name": name, "type": "latency",
            "attributes": {"latency": latency}}))
        .unwrap()
    }

    fn toxic(id: u64, proxy: &str, spec: ToxicSpec) -> Toxic {
        Toxic {
            id,
            proxy: proxy.into(),
            spec,
            injected_at_ms: 0.0,
        }
    }

    #[test]
    fn an_update_retires_the_old_form_and_activates_the_new_one_under_its_own_number() {
        let mut book = ToxicBook::default();
        book.announce(toxic(1, "database", spec("slow", 100)));
        assert!(book.active().is_empty(), "announced is not in effect");
        book.activate("database", "slow", 10.0).unwrap();
        // The same name on another proxy is another toxic.
        book.announce(toxic(2, "payments", spec("slow", 100)));
        book.activate("payments", "slow", 20.0).unwrap();
        // An update: the new form announced while the old one is in effect, then the old one
        // removed, then the new one in effect.
        book.announce(toxic(3, "database", spec("slow", 900)));
        let old = book.deactivate("database", "slow").unwrap();
        assert_eq!(
            (old.id, old.spec.attributes["latency"].clone()),
            (1, json!(100))
        );
        let new = book.activate("database", "slow", 30.0).unwrap();
        assert_eq!((new.id, new.injected_at_ms), (3, 30.0));
        let ids: Vec<u64> = book.active().iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![2, 3]);
        assert!(book.pending.is_empty());
    }

    #[test]
    fn an_abandoned_toxic_never_becomes_active_and_a_removed_one_is_gone() {
        let mut book = ToxicBook::default();
        book.announce(toxic(1, "database", spec("slow", 100)));
        assert_eq!(book.take_pending("database", "slow").map(|t| t.id), Some(1));
        assert!(book.activate("database", "slow", 1.0).is_none());
        assert!(book.active().is_empty());
        book.announce(toxic(2, "database", spec("slow", 100)));
        book.activate("database", "slow", 2.0).unwrap();
        assert!(book.deactivate("database", "other").is_none());
        assert_eq!(book.deactivate("database", "slow").map(|t| t.id), Some(2));
        assert!(book.deactivate("database", "slow").is_none());
    }

    #[test]
    fn a_toxic_shows_with_toxiproxy_s_fields_its_proxy_and_who_added_it() {
        let mut t = toxic(4, "database", spec("slow", 250));
        t.injected_at_ms = 1500.0;
        assert_eq!(
            t.label(),
            "#4 toxic slow on database: latency downstream (jitter=0, latency=250) (by toxiproxy)"
        );
        let v = serde_json::to_value(view(&t, "2026-01-01T00:00:01.500Z".into())).unwrap();
        assert_eq!(
            v,
            json!({
                "id": 4,
                "toxic": "toxic slow on database: latency downstream (jitter=0, latency=250)",
                "proxy": "database",
                "name": "slow",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"latency": 250, "jitter": 0},
                "by": "toxiproxy",
                "injected_at_ms": 1500.0,
                "injected_at": "2026-01-01T00:00:01.500Z",
            })
        );
        assert_eq!(
            journal_spec("database", &t.spec)["toxic"]["name"],
            json!("slow")
        );
    }
}
