//! [`Route`]: a request's route template with its method, shared by every record of the route,
//! so a recording of millions of requests holds each template once.

use serde::{Deserialize, Serialize};

/// A route template with its method, `GET /products/{id}`: one allocation shared by every
/// request of the route (cloning it counts a reference).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route(std::sync::Arc<str>);

impl Route {
    pub fn new(line: &str) -> Route {
        Route(line.into())
    }

    /// The whole template, `GET /products/{id}`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method, the template's first word.
    pub fn method(&self) -> &str {
        self.0.split(' ').next().unwrap_or("")
    }
}

impl std::ops::Deref for Route {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Route {
    fn from(line: &str) -> Route {
        Route::new(line)
    }
}

impl From<String> for Route {
    fn from(line: String) -> Route {
        Route(line.into())
    }
}

impl PartialEq<str> for Route {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Route {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Route {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Route {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Route, D::Error> {
        String::deserialize(d).map(Route::from)
    }
}
