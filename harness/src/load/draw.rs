//! Drawing the request sequence: request *i* of a load, its entry picked by weight and its
//! placeholders filled in, from one ChaCha generator seeded by the plan's seed and drawn in
//! sequence order, so the same seed gives the same requests. Values captured from answers
//! ([`CapturedPools`]) are the one input that depends on the target.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::compile::{Compiled, Piece};
use super::plan::Param;

// ---------------------------------------------------------------------------------------------
// The request sequence.

/// One request, drawn and filled in.
pub(super) struct Drawn {
    pub(super) entry: usize,
    pub(super) path: String,
    pub(super) body: Option<String>,
    pub(super) key: Option<String>,
    /// The entry's own headers, filled in.
    pub(super) headers: Vec<(String, String)>,
}

impl Drawn {
    pub(super) fn headers(&self) -> BTreeMap<String, String> {
        let mut h = BTreeMap::new();
        if self.body.is_some() {
            h.insert("content-type".to_string(), "application/json".to_string());
        }
        if let Some(key) = &self.key {
            h.insert("idempotency-key".to_string(), key.clone());
        }
        for (name, value) in &self.headers {
            h.insert(name.clone(), value.clone());
        }
        h
    }
}

/// Draws requests in sequence order from one seeded generator.
pub(super) struct Sequence {
    rng: ChaCha8Rng,
    /// A request to send again (`retry_same_key`) and how many more times.
    repeat: Option<(Drawn, u32)>,
}

impl Sequence {
    pub(super) fn new(plan: &Compiled) -> Sequence {
        Sequence {
            rng: ChaCha8Rng::seed_from_u64(plan.seed),
            repeat: None,
        }
    }

    pub(super) fn next(&mut self, seq: u64, plan: &Compiled, orders: &CapturedPools) -> Drawn {
        if let Some((drawn, left)) = self.repeat.take() {
            if left > 1 {
                self.repeat = Some((drawn.clone_request(), left - 1));
            }
            return drawn;
        }
        let total = *plan.cumulative.last().expect("the mix is not empty");
        let pick = self.rng.random_range(0..total);
        let entry_index = plan.cumulative.partition_point(|&c| c <= pick);
        let entry = &plan.entries[entry_index];
        let values: Vec<String> = entry
            .params
            .iter()
            .map(|(_, p)| match p {
                Param::Uniform([low, high]) => self.rng.random_range(*low..=*high).to_string(),
                Param::OneOf(values) => values[self.rng.random_range(0..values.len())].clone(),
                Param::Value(v) => v.clone(),
                Param::Captured(pool) => {
                    let pool = plan.pools.iter().position(|n| n == pool);
                    let draw: u128 = self.rng.random();
                    pool.and_then(|pool| orders.pick(pool, draw as u64))
                        .unwrap_or_else(|| {
                            uuid::Builder::from_random_bytes(draw.to_le_bytes())
                                .into_uuid()
                                .to_string()
                        })
                }
                Param::Sequence => seq.to_string(),
                Param::Uuid => uuid::Builder::from_random_bytes(self.rng.random())
                    .into_uuid()
                    .to_string(),
            })
            .collect();
        let uuid = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        let fill = |pieces: &[Piece]| {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => s.push_str(t),
                    Piece::Param(i) => s.push_str(&values[*i]),
                    Piece::Seq => s.push_str(&seq.to_string()),
                    Piece::Uuid => s.push_str(&uuid.to_string()),
                }
            }
            s
        };
        let drawn = Drawn {
            entry: entry_index,
            path: fill(&entry.path),
            body: entry.body.as_deref().map(fill),
            key: entry.idempotency_key.then(|| uuid.to_string()),
            headers: entry
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), fill(value)))
                .collect(),
        };
        if entry.retry_same_key > 0 {
            self.repeat = Some((drawn.clone_request(), entry.retry_same_key));
        }
        drawn
    }
}

impl Drawn {
    fn clone_request(&self) -> Drawn {
        Drawn {
            entry: self.entry,
            path: self.path.clone(),
            body: self.body.clone(),
            key: self.key.clone(),
            headers: self.headers.clone(),
        }
    }
}

/// Values captured from 2xx answers, one pool per capture name, for [`Param::Captured`].
/// Bounded: the most recent values are enough to read back.
#[derive(Default)]
pub(super) struct CapturedPools(Mutex<Vec<VecDeque<String>>>);

const CAPTURED_KEPT: usize = 10_000;

impl CapturedPools {
    pub(super) fn pick(&self, pool: usize, draw: u64) -> Option<String> {
        let pools = self.0.lock().unwrap();
        let ids = pools.get(pool)?;
        (!ids.is_empty()).then(|| ids[(draw % ids.len() as u64) as usize].clone())
    }

    /// Keeps, from a JSON answer, the value at each pointer in its pool. Strings are kept as
    /// they are, numbers and other values as JSON text.
    pub(super) fn add(&self, captures: &[(usize, String)], body: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
            return;
        };
        let mut pools = self.0.lock().unwrap();
        for (pool, pointer) in captures {
            let value = match v.pointer(pointer) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => continue,
                Some(other) => other.to_string(),
            };
            if pools.len() <= *pool {
                pools.resize_with(pool + 1, VecDeque::new);
            }
            let ids = &mut pools[*pool];
            if ids.len() >= CAPTURED_KEPT {
                ids.pop_front();
            }
            ids.push_back(value);
        }
    }
}
