//! The proxies the Toxiproxy API knows by name, and every change it makes to them: proxies it
//! created (it owns them and stops them when they are deleted) and proxies a lab registered
//! (it only drives their toxics and `enabled`).
//!
//! Every change is checked whole before anything is touched, so a refused request changes
//! nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;

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

/// The named proxies. One lock serializes every change, as Toxiproxy's collection lock does.
pub struct Registry {
    seed: u64,
    proxies: Mutex<BTreeMap<String, Entry>>,
}

impl Registry {
    /// `seed` drives the random choices of the proxies the API creates (each also mixes in its
    /// name).
    pub fn new(seed: u64) -> Registry {
        Registry {
            seed,
            proxies: Mutex::new(BTreeMap::new()),
        }
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
        let entry = self.start(&input).await?;
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
                    stop(old).await;
                }
            }
            match self.start(&input).await {
                Ok(entry) => {
                    out.push(entry.to_json(&input.name));
                    started.push(input.name.clone());
                    proxies.insert(input.name, entry);
                }
                Err(e) => {
                    for name in started {
                        if let Some(entry) = proxies.remove(&name) {
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
                    if let Ok(entry) = self.start(&back).await {
                        proxies.insert(name.to_string(), entry);
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
            stop(entry).await;
        }
        Ok(())
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for e in proxies.values_mut() {
            e.toxics.clear();
            e.apply_toxics()?;
            set_enabled(&e.held.handle(), true).await;
        }
        Ok(())
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
        let json = spec.to_json();
        e.toxics.push(spec);
        if let Err(err) = e.apply_toxics() {
            e.toxics.pop();
            return Err(err);
        }
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
        let old = std::mem::replace(&mut e.toxics[i], next);
        if let Err(err) = e.apply_toxics() {
            e.toxics[i] = old;
            return Err(err);
        }
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
        e.toxics.remove(i);
        e.apply_toxics()
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
        for (_, entry) in std::mem::take(&mut *proxies) {
            stop(entry).await;
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

/// `toxic on proxy` for every toxic in a [`Registry::list`] answer.
pub fn toxic_names(list: &Value) -> Vec<String> {
    let Some(proxies) = list.as_object() else {
        return Vec::new();
    };
    proxies
        .iter()
        .flat_map(|(proxy, p)| {
            p["toxics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| Some(format!("{} on {proxy}", t["name"].as_str()?)))
        })
        .collect()
}
