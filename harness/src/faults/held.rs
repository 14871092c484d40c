//! What an injected fault holds until its revert: the connection with a table lock in its open
//! transaction, the connections that fill the server, the extra load's handle.
//!
//! A fault type holds only its parameters (it is journalled and compared), so the live things
//! it creates are kept here, in the lab, under the fault's description, and taken back by its
//! revert. Whatever is still here when the lab is dropped is dropped with it, which closes
//! connections and cancels tasks: the last line of defence behind the revert.

use std::any::Any;
use std::sync::Mutex;

#[derive(Default)]
pub struct Held {
    items: Mutex<Vec<(String, Box<dyn Any + Send>)>>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self.lock().iter().map(|(k, _)| k.clone()).collect();
        f.debug_struct("Held").field("keys", &keys).finish()
    }
}

impl Held {
    /// Keeps `value` under `key`, after anything already kept under it.
    pub fn put<T: Any + Send>(&self, key: &str, value: T) {
        self.lock().push((key.to_string(), Box::new(value)));
    }

    /// Takes back the most recent value of type `T` kept under `key`.
    pub fn take<T: Any + Send>(&self, key: &str) -> Option<T> {
        let mut items = self.lock();
        let at = items.iter().rposition(|(k, v)| k == key && v.is::<T>())?;
        let (_, value) = items.remove(at);
        value.downcast::<T>().ok().map(|b| *b)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Box<dyn Any + Send>)>> {
        // A list of owned values stays valid even if a holder panicked.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_taken_back_once_by_key_and_type() {
        let held = Held::default();
        held.put("a", 1u32);
        held.put("a", "text");
        held.put("b", 2u32);
        assert_eq!(held.take::<u32>("a"), Some(1));
        assert_eq!(held.take::<u32>("a"), None);
        assert_eq!(held.take::<&str>("a"), Some("text"));
        assert_eq!(held.take::<u32>("b"), Some(2));
    }
}
