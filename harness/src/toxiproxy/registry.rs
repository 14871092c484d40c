//! The proxies the Toxiproxy API knows by name, and every change it makes to them: proxies it
//! created (it owns them and stops them when they are deleted) and proxies a lab registered
//! (it only drives their toxics and `enabled`).
//!
//! Every change is checked whole before anything is touched, so a refused request changes
//! nothing. An owner that must account for every toxic (a game day journals and records them)
//! installs a [`ToxicWatch`]: told of a toxic before it takes effect, able to refuse it, and told
//! when it is gone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::ApiError;
use super::model::ToxicSpec;
use crate::proxy::{Proxy, ProxyHandle, ProxyStats, Stream};

/// A proxy as a create request, the `populate` list or a config file gives it.
#[derive(Debug, Clone)]
pub struct ProxyInput {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    /// Toxics active from the start (config files and `populate`; Toxiproxy has no such key).
    pub toxics: Vec<ToxicSpec>,
}

struct Entry {
    listen: String,
    upstream: String,
    held: Held,
    /// In the order they were added.
    toxics: Vec<ToxicSpec>,
}

enum Held {
    Owned(Proxy),
    Lab(ProxyHandle),
}

impl Held {
    fn handle(&self) -> ProxyHandle {
        match self {
            Held::Owned(p) => p.handle(),
            Held::Lab(h) => h.clone(),
        }
    }
}

impl Entry {
    fn apply_toxics(&self) -> Result<(), ApiError> {
        let toxics = self
            .toxics
            .iter()
            .map(ToxicSpec::to_toxic)
            .collect::<Result<Vec<_>, _>>()?;
        self.held
            .handle()
            .set_toxics(toxics)
            .map_err(|e| ApiError::bad_body(&e.to_string()))
    }

    /// Toxiproxy lists the upstream toxics first, then the downstream ones, each in the order
    /// they were added.
    fn toxics_json(&self) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for stream in [Stream::Upstream, Stream::Downstream] {
            out.extend(
                self.toxics
                    .iter()
                    .filter(|t| t.stream == stream)
                    .map(ToxicSpec::to_json),
            );
        }
        out
    }

    fn to_json(&self, name: &str) -> Value {
        json!({
            "name": name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.held.handle().enabled(),
            "toxics": self.toxics_json(),
        })
    }
}

/// How a toxic left its proxy through the API, as a [`ToxicWatch`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// `DELETE /proxies/{proxy}/toxics/{toxic}`.
    Removed,
    /// An update replaced it; the new form is announced with `adding` and `added`.
    Updated,
    /// `POST /reset`.
    Reset,
    /// Its proxy was deleted, or replaced by `populate` or a change of address.
    ProxyGone,
}

impl std::fmt::Display for Removal {
    /// Completes "reverted ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Removal::Removed => "removed through the Toxiproxy API",
            Removal::Updated => "updated through the Toxiproxy API",
            Removal::Reset => "by a reset through the Toxiproxy API",
            Removal::ProxyGone => "with its proxy, through the Toxiproxy API",
        })
    }
}

/// Told of every change the API makes to the toxics, in order, while the registry's lock is
/// held (so never two at once): `adding` before a toxic takes effect (an error refuses the whole
/// request, and nothing changes), then `added` once it is in place or `abandoned` if the
/// request failed after all; `removed` once a toxic is gone. An update is the old form removed
/// ([`Removal::Updated`]) and the new one added. Changes the owner makes itself
/// ([`Registry::clear_toxics`]) are not told: the owner accounts for them.
///
/// Synchronous on purpose: the owner's bookkeeping (a synced journal line, an event) is quick,
/// and an async hook would let another change of the registry interleave with it.
pub trait ToxicWatch: Send + Sync {
    fn adding(&self, proxy: &str, toxic: &ToxicSpec) -> Result<(), String>;
    fn abandoned(&self, proxy: &str, toxic: &ToxicSpec);
    fn added(&self, proxy: &str, toxic: &ToxicSpec);
    fn removed(&self, proxy: &str, toxic: &ToxicSpec, how: Removal);
}

/// The named proxies. One lock serializes every change, as Toxiproxy's collection lock does.
pub struct Registry {
    seed: u64,
    proxies: Mutex<BTreeMap<String, Entry>>,
    watch: OnceLock<Arc<dyn ToxicWatch>>,
}

impl Registry {
    /// `seed` drives the random choices of the proxies the API creates (each also mixes in its
    /// name).
    pub fn new(seed: u64) -> Registry {
        Registry {
            seed,
            proxies: Mutex::new(BTreeMap::new()),
            watch: OnceLock::new(),
        }
    }

    /// Installs the one watcher of every toxic change; false if one is installed already.
    pub fn watch(&self, watch: Arc<dyn ToxicWatch>) -> bool {
        self.watch.set(watch).is_ok()
    }

    /// Announces `toxics` before they take effect: all accepted, or none (those accepted
    /// before a refusal are abandoned again) and the request refused.
    fn announce<'a>(
        &self,
        toxics: impl IntoIterator<Item = (&'a str, &'a ToxicSpec)>,
    ) -> Result<(), ApiError> {
        let Some(w) = self.watch.get() else {
            return Ok(());
        };
        let mut done: Vec<(&str, &ToxicSpec)> = Vec::new();
        for (proxy, toxic) in toxics {
            if let Err(why) = w.adding(proxy, toxic) {
                for (p, t) in done {
                    w.abandoned(p, t);
                }
                return Err(ApiError::refused(&toxic.describe(proxy), &why));
            }
            done.push((proxy, toxic));
        }
        Ok(())
    }

    fn tell<'a>(
        &self,
        toxics: impl IntoIterator<Item = (&'a str, &'a ToxicSpec)>,
        f: impl Fn(&dyn ToxicWatch, &str, &ToxicSpec),
    ) {
        if let Some(w) = self.watch.get() {
            for (proxy, toxic) in toxics {
                f(w.as_ref(), proxy, toxic);
            }
        }
    }

    fn tell_removed(&self, proxy: &str, toxics: &[ToxicSpec], how: Removal) {
        self.tell(toxics.iter().map(|t| (proxy, t)), |w, p, t| {
            w.removed(p, t, how)
        });
    }

    /// Makes a proxy that someone else owns (a lab's database proxy) reachable by `name`. Its
    /// toxics and `enabled` can then be driven through the API; it cannot be deleted or moved.
    pub async fn register(&self, name: &str, proxy: ProxyHandle) {
        let entry = Entry {
            listen: proxy.local_addr().to_string(),
            upstream: proxy.upstream().to_string(),
            held: Held::Lab(proxy),
            toxics: Vec::new(),
        };
        self.proxies.lock().await.insert(name.to_string(), entry);
    }

    pub async fn list(&self) -> Value {
        let proxies = self.proxies.lock().await;
        let map: serde_json::Map<String, Value> = proxies
            .iter()
            .map(|(name, e)| (name.clone(), e.to_json(name)))
            .collect();
        Value::Object(map)
    }

    pub async fn show(&self, name: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        let e = proxies.get(name).ok_or_else(ApiError::proxy_not_found)?;
        Ok(e.to_json(name))
    }

    /// Creates a proxy; 409 when the name is taken.
    pub async fn create(&self, input: ProxyInput) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&input.name) {
            return Err(ApiError::proxy_exists());
        }
        let entry = self.start_announced(&input).await?;
        let json = entry.to_json(&input.name);
        proxies.insert(input.name, entry);
        Ok(json)
    }

    /// Creates or replaces each proxy: one with the same name, listen address and upstream is
    /// kept as it is, as Toxiproxy keeps it. When one cannot be started, those this call
    /// started are stopped again and the ones it replaced are lost, as in Toxiproxy.
    pub async fn populate(&self, inputs: Vec<ProxyInput>) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut out = Vec::new();
        let mut started: Vec<String> = Vec::new();
        for input in inputs {
            if let Some(e) = proxies.get(&input.name) {
                if e.listen == input.listen && e.upstream == input.upstream {
                    out.push(e.to_json(&input.name));
                    continue;
                }
                if matches!(e.held, Held::Lab(_)) {
                    return Err(ApiError::lab_proxy(&input.name));
                }
                if let Some(old) = proxies.remove(&input.name) {
                    self.tell_removed(&input.name, &old.toxics, Removal::ProxyGone);
                    stop(old).await;
                }
            }
            match self.start_announced(&input).await {
                Ok(entry) => {
                    out.push(entry.to_json(&input.name));
                    started.push(input.name.clone());
                    proxies.insert(input.name, entry);
                }
                Err(e) => {
                    for name in started {
                        if let Some(entry) = proxies.remove(&name) {
                            self.tell_removed(&name, &entry.toxics, Removal::ProxyGone);
                            stop(entry).await;
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(json!({ "proxies": out }))
    }

    /// Changes `listen`, `upstream` or `enabled` (the fields the body names).
    pub async fn update(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let e = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let listen = field_str(body, "listen")?.unwrap_or_else(|| e.listen.clone());
        let upstream = field_str(body, "upstream")?.unwrap_or_else(|| e.upstream.clone());
        let enabled = match body.get("enabled") {
            None | Some(Value::Null) => e.held.handle().enabled(),
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ApiError::bad_body(&format!(
                    "`enabled` {other} is not a boolean"
                )));
            }
        };
        if listen != e.listen || upstream != e.upstream {
            if matches!(e.held, Held::Lab(_)) {
                return Err(ApiError::lab_proxy(name));
            }
            // A new listener or upstream means a new proxy, with the same toxics.
            let input = ProxyInput {
                name: name.to_string(),
                listen,
                upstream,
                enabled,
                toxics: e.toxics.clone(),
            };
            let back = ProxyInput {
                listen: e.listen.clone(),
                upstream: e.upstream.clone(),
                enabled: e.held.handle().enabled(),
                ..input.clone()
            };
            // The old listener must go first when the new one takes the same port.
            if let Some(old) = proxies.remove(name) {
                stop(old).await;
            }
            return match self.start(&input).await {
                Ok(entry) => {
                    let json = entry.to_json(name);
                    proxies.insert(name.to_string(), entry);
                    Ok(json)
                }
                Err(err) => {
                    // Put the old one back as it was; its port was just freed.
                    match self.start(&back).await {
                        Ok(entry) => {
                            proxies.insert(name.to_string(), entry);
                        }
                        Err(_) => self.tell_removed(name, &back.toxics, Removal::ProxyGone),
                    }
                    Err(err)
                }
            };
        } else {
            set_enabled(&e.held.handle(), enabled).await;
        }
        Ok(e.to_json(name))
    }

    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        match proxies.get(name) {
            None => return Err(ApiError::proxy_not_found()),
            Some(Entry {
                held: Held::Lab(_), ..
            }) => return Err(ApiError::lab_proxy(name)),
            Some(_) => {}
        }
        if let Some(entry) = proxies.remove(name) {
            self.tell_removed(name, &entry.toxics, Removal::ProxyGone);
            stop(entry).await;
        }
        Ok(())
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for (name, e) in proxies.iter_mut() {
            let gone = std::mem::take(&mut e.toxics);
            if let Err(err) = e.apply_toxics() {
                e.toxics = gone;
                return Err(err);
            }
            self.tell_removed(name, &gone, Removal::Reset);
            set_enabled(&e.held.handle(), true).await;
        }
        Ok(())
    }

    /// Removes every toxic for the owner, who accounts for them itself (the watcher is not
    /// told): a game day's halt. Returns each proxy's toxics that are gone, in the order they
    /// were added; a proxy whose toxics could not be removed keeps them and is named in the
    /// error, after the others were cleared.
    pub async fn clear_toxics(&self) -> (Vec<(String, ToxicSpec)>, Vec<(String, ApiError)>) {
        let mut proxies = self.proxies.lock().await;
        let mut gone = Vec::new();
        let mut failed = Vec::new();
        for (name, e) in proxies.iter_mut() {
            if e.toxics.is_empty() {
                continue;
            }
            let toxics = std::mem::take(&mut e.toxics);
            match e.apply_toxics() {
                Ok(()) => gone.extend(toxics.into_iter().map(|t| (name.clone(), t))),
                Err(err) => {
                    e.toxics = toxics;
                    failed.push((name.clone(), err));
                }
            }
        }
        (gone, failed)
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        let e = proxies.get(proxy).ok_or_else(ApiError::proxy_not_found)?;
        Ok(Value::Array(e.toxics_json()))
    }

    pub async fn add_toxic(&self, proxy: &str, body: &Value) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let e = proxies
            .get_mut(proxy)
            .ok_or_else(ApiError::proxy_not_found)?;
        let spec = ToxicSpec::from_json(body)?;
        if e.toxics.iter().any(|t| t.name == spec.name) {
            return Err(ApiError::toxic_exists());
        }
        self.announce([(proxy, &spec)])?;
        let json = spec.to_json();
        e.toxics.push(spec);
        if let Err(err) = e.apply_toxics() {
            if let Some(spec) = e.toxics.pop() {
                self.tell([(proxy, &spec)], |w, p, t| w.abandoned(p, t));
            }
            return Err(err);
        }
        self.tell(e.toxics.last().map(|t| (proxy, t)), |w, p, t| w.added(p, t));
        Ok(json)
    }

    pub async fn show_toxic(&self, proxy: &str, toxic: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        let e = proxies.get(proxy).ok_or_else(ApiError::proxy_not_found)?;
        e.toxics
            .iter()
            .find(|t| t.name == toxic)
            .map(ToxicSpec::to_json)
            .ok_or_else(ApiError::toxic_not_found)
    }

    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let e = proxies
            .get_mut(proxy)
            .ok_or_else(ApiError::proxy_not_found)?;
        let i = e
            .toxics
            .iter()
            .position(|t| t.name == toxic)
            .ok_or_else(ApiError::toxic_not_found)?;
        let next = e.toxics[i].updated(body)?;
        self.announce([(proxy, &next)])?;
        let old = std::mem::replace(&mut e.toxics[i], next);
        if let Err(err) = e.apply_toxics() {
            let next = std::mem::replace(&mut e.toxics[i], old);
            self.tell([(proxy, &next)], |w, p, t| w.abandoned(p, t));
            return Err(err);
        }
        self.tell([(proxy, &old)], |w, p, t| w.removed(p, t, Removal::Updated));
        self.tell([(proxy, &e.toxics[i])], |w, p, t| w.added(p, t));
        Ok(e.toxics[i].to_json())
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let e = proxies
            .get_mut(proxy)
            .ok_or_else(ApiError::proxy_not_found)?;
        let i = e
            .toxics
            .iter()
            .position(|t| t.name == toxic)
            .ok_or_else(ApiError::toxic_not_found)?;
        let gone = e.toxics.remove(i);
        if let Err(err) = e.apply_toxics() {
            e.toxics.insert(i, gone);
            return Err(err);
        }
        self.tell([(proxy, &gone)], |w, p, t| {
            w.removed(p, t, Removal::Removed)
        });
        Ok(())
    }

    /// Each proxy's counters, for `/metrics`.
    pub async fn stats(&self) -> Vec<(String, String, String, ProxyStats)> {
        let proxies = self.proxies.lock().await;
        proxies
            .iter()
            .map(|(name, e)| {
                (
                    name.clone(),
                    e.listen.clone(),
                    e.upstream.clone(),
                    e.held.handle().stats(),
                )
            })
            .collect()
    }

    /// Stops every proxy the API created; those a lab registered are left to the lab.
    pub async fn shutdown(&self) {
        let mut proxies = self.proxies.lock().await;
        for (name, entry) in std::mem::take(&mut *proxies) {
            if matches!(entry.held, Held::Owned(_)) {
                self.tell_removed(&name, &entry.toxics, Removal::ProxyGone);
            }
            stop(entry).await;
        }
    }

    /// [`Registry::start`] for a proxy whose toxics are new: announced first, then added or
    /// abandoned.
    async fn start_announced(&self, input: &ProxyInput) -> Result<Entry, ApiError> {
        let toxics = || input.toxics.iter().map(|t| (input.name.as_str(), t));
        self.announce(toxics())?;
        match self.start(input).await {
            Ok(entry) => {
                self.tell(toxics(), |w, p, t| w.added(p, t));
                Ok(entry)
            }
            Err(e) => {
                self.tell(toxics(), |w, p, t| w.abandoned(p, t));
                Err(e)
            }
        }
    }

    /// Starts a proxy for `input`, with its toxics; nothing is left behind on error.
    async fn start(&self, input: &ProxyInput) -> Result<Entry, ApiError> {
        let listen = resolve_listen(&input.listen).await?;
        let upstream = resolve_upstream(&input.upstream).await?;
        let seed = self.seed ^ name_seed(&input.name);
        let proxy = Proxy::start(listen, upstream, seed)
            .await
            .map_err(|e| ApiError::listen_failed(&input.listen, &e))?;
        let entry = Entry {
            listen: proxy.local_addr().to_string(),
            upstream: input.upstream.clone(),
            held: Held::Owned(proxy),
            toxics: input.toxics.clone(),
        };
        entry.apply_toxics()?;
        set_enabled(&entry.held.handle(), input.enabled).await;
        Ok(entry)
    }
}

/// Enables or disables a proxy and answers once it listens or refuses, as Toxiproxy does.
async fn set_enabled(proxy: &ProxyHandle, enabled: bool) {
    proxy.set_enabled(enabled);
    proxy
        .listening(enabled, std::time::Duration::from_secs(2))
        .await;
}

async fn stop(entry: Entry) {
    if let Held::Owned(p) = entry.held {
        p.stop().await;
    }
}

fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn field_str(body: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_body(&format!(
            "`{key}` {other} is not a string"
        ))),
    }
}

/// A listen address as Go's `net.Listen` takes it: `host:port`, `:port` for every interface,
/// port 0 for any free port.
async fn resolve_listen(listen: &str) -> Result<SocketAddr, ApiError> {
    let text = if listen.is_empty() {
        "0.0.0.0:0".to_string()
    } else if listen.starts_with(':') {
        format!("0.0.0.0{listen}")
    } else {
        listen.to_string()
    };
    first_addr(&text)
        .await
        .ok_or_else(|| ApiError::bad_address("listen", listen))
}

async fn resolve_upstream(upstream: &str) -> Result<SocketAddr, ApiError> {
    let text = if upstream.starts_with(':') {
        format!("localhost{upstream}")
    } else {
        upstream.to_string()
    };
    first_addr(&text)
        .await
        .ok_or_else(|| ApiError::bad_address("upstream", upstream))
}

async fn first_addr(text: &str) -> Option<SocketAddr> {
    let mut addrs = tokio::net::lookup_host(text).await.ok()?;
    addrs.next()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// Writes down what it is told; refuses toxics named `refused`.
    #[derive(Default)]
    struct Told(StdMutex<Vec<String>>);

    impl Told {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }

        fn push(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }
    }

    impl ToxicWatch for Told {
        fn adding(&self, proxy: &str, toxic: &ToxicSpec) -> Result<(), String> {
            if toxic.name == "refused" {
                return Err("no journal".into());
            }
            self.push(format!(
                "adding {} on {proxy} {}",
                toxic.name,
                toxic.to_json()["attributes"]
            ));
            Ok(())
        }
        fn abandoned(&self, proxy: &str, toxic: &ToxicSpec) {
            self.push(format!("abandoned {} on {proxy}", toxic.name));
        }
        fn added(&self, proxy: &str, toxic: &ToxicSpec) {
            self.push(format!(
                "added {} on {proxy} {}",
                toxic.name,
                toxic.to_json()["attributes"]
            ));
        }
        fn removed(&self, proxy: &str, toxic: &ToxicSpec, how: Removal) {
            self.push(format!("removed {} on {proxy} {how}", toxic.name));
        }
    }

    async fn watched() -> (Registry, Arc<Told>) {
        let registry = Registry::new(1);
        let told = Arc::new(Told::default());
        assert!(registry.watch(told.clone()));
        assert!(!registry.watch(told.clone()), "one watcher only");
        let input = ProxyInput {
            name: "db".into(),
            listen: "127.0.0.1:0".into(),
            upstream: "127.0.0.1:9".into(),
            enabled: true,
            toxics: Vec::new(),
        };
        registry.create(input).await.unwrap();
        (registry, told)
    }

    fn latency(name: &str, ms: u64) -> Value {
        json!({"name": name, "type": "latency", "attributes": {"latency": ms}})
    }

    #[tokio::test]
    async fn the_watcher_hears_of_each_toxic_before_it_bites_and_after_it_is_gone() {
        let (registry, told) = watched().await;
        registry.add_toxic("db", &latency("slow", 5)).await.unwrap();
        assert_eq!(
            told.take(),
            [
                r#"adding slow on db {"jitter":0,"latency":5}"#,
                r#"added slow on db {"jitter":0,"latency":5}"#
            ]
        );
        registry
            .update_toxic("db", "slow", &json!({"attributes": {"latency": 9}}))
            .await
            .unwrap();
        assert_eq!(
            told.take(),
            [
                r#"adding slow on db {"jitter":0,"latency":9}"#,
                "removed slow on db updated through the Toxiproxy API",
                r#"added slow on db {"jitter":0,"latency":9}"#
            ]
        );
        registry.remove_toxic("db", "slow").await.unwrap();
        assert_eq!(
            told.take(),
            ["removed slow on db removed through the Toxiproxy API"]
        );
        registry.add_toxic("db", &latency("a", 1)).await.unwrap();
        told.take();
        registry.reset().await.unwrap();
        assert_eq!(
            told.take(),
            ["removed a on db by a reset through the Toxiproxy API"]
        );
        registry.add_toxic("db", &latency("b", 1)).await.unwrap();
        told.take();
        registry.delete("db").await.unwrap();
        assert_eq!(
            told.take(),
            ["removed b on db with its proxy, through the Toxiproxy API"]
        );
    }

    #[tokio::test]
    async fn a_toxic_the_watcher_refuses_is_not_applied_and_the_owner_s_clear_is_not_told() {
        let (registry, told) = watched().await;
        let err = registry
            .add_toxic("db", &latency("refused", 5))
            .await
            .unwrap_err();
        assert_eq!(err.status, 503, "{err}");
        assert!(err.message.contains("no journal"), "{err}");
        assert_eq!(registry.toxics("db").await.unwrap(), json!([]));
        assert!(told.take().is_empty());
        // A proxy created with toxics, one of them refused: none is announced as added.
        let input = ProxyInput {
            name: "pay".into(),
            listen: "127.0.0.1:0".into(),
            upstream: "127.0.0.1:9".into(),
            enabled: true,
            toxics: vec![
                ToxicSpec::from_json(&latency("ok", 1)).unwrap(),
                ToxicSpec::from_json(&latency("refused", 1)).unwrap(),
            ],
        };
        assert!(registry.create(input).await.is_err());
        assert_eq!(
            told.take(),
            [
                r#"adding ok on pay {"jitter":0,"latency":1}"#,
                "abandoned ok on pay"
            ]
        );
        registry.add_toxic("db", &latency("slow", 5)).await.unwrap();
        told.take();
        let (gone, failed) = registry.clear_toxics().await;
        assert!(failed.is_empty());
        let gone: Vec<(String, String)> = gone.into_iter().map(|(p, t)| (p, t.name)).collect();
        assert_eq!(gone, [("db".to_string(), "slow".to_string())]);
        assert!(
            told.take().is_empty(),
            "the owner accounts for its own clear"
        );
        assert_eq!(registry.toxics("db").await.unwrap(), json!([]));
        registry.shutdown().await;
    }
}
