//! [`Headers`]: the header names and values a request record keeps, as small as the records
//! need: the empty set is one null pointer, and "the service's request-id header came with it"
//! is one shared set rather than an allocation per record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Header names (lower case) and values. Most records keep none, so the empty set is one null
/// pointer and a set is allocated only when it holds something. A success's headers are not
/// kept, but whether it carried the service's request-id header (the one its lab file names,
/// [`crate::record::RequestIds`]) is: the request-id check reads that of every answer. That is
/// one shared set, counted, not allocated per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Option<std::sync::Arc<HeaderSet>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct HeaderSet {
    map: BTreeMap<String, String>,
    /// A non-empty request-id header came with the answer, whether or not it is in `map`.
    request_id_seen: bool,
}

/// The headers of every success that carried a request-id header and kept no header.
static REQUEST_ID_SEEN: std::sync::LazyLock<std::sync::Arc<HeaderSet>> =
    std::sync::LazyLock::new(|| {
        std::sync::Arc::new(HeaderSet {
            map: BTreeMap::new(),
            request_id_seen: true,
        })
    });

impl Headers {
    /// No header, for a `static`.
    pub(super) const NONE: Headers = Headers(None);

    /// These headers, noting whether a non-empty request-id header (the one the load was told
    /// to note) came with them.
    pub fn with_request_id_seen(mut self, seen: bool) -> Headers {
        match (&mut self.0, seen) {
            (None, true) => self.0 = Some(REQUEST_ID_SEEN.clone()),
            (None, false) => {}
            (Some(set), seen) => std::sync::Arc::make_mut(set).request_id_seen = seen,
        }
        self
    }

    /// Whether a non-empty request id came with the answer (kept or not): noted by the load,
    /// or kept under `header` (a lower-case name).
    pub fn has_request_id(&self, header: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.request_id_seen)
            || self.get(header).is_some_and(|v| !v.trim().is_empty())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.as_ref()?.map.get(name).map(String::as_str)
    }

    pub fn insert(&mut self, name: String, value: String) {
        let set = self.0.get_or_insert_default();
        std::sync::Arc::make_mut(set).map.insert(name, value);
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let set = std::sync::Arc::make_mut(self.0.as_mut()?);
        let removed = set.map.remove(name);
        if set.map.is_empty() && !set.request_id_seen {
            self.0 = None;
        }
        removed
    }

    /// Whether no header is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.map.len())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().flat_map(|s| s.map.iter())
    }
}

impl From<BTreeMap<String, String>> for Headers {
    fn from(map: BTreeMap<String, String>) -> Headers {
        Headers((!map.is_empty()).then(|| {
            std::sync::Arc::new(HeaderSet {
                map,
                request_id_seen: false,
            })
        }))
    }
}

impl FromIterator<(String, String)> for Headers {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Headers {
        Headers::from(iter.into_iter().collect::<BTreeMap<_, _>>())
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a String);
    type IntoIter = Box<dyn Iterator<Item = (&'a String, &'a String)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl std::ops::Index<&str> for Headers {
    type Output = str;
    /// Panics when the header is missing, like a map's index.
    fn index(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no header {name:?}"))
    }
}

impl Serialize for Headers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(Headers::from)
    }
}
