//! One async lock per key, made on first use: work on the same key is done one at a time, work on
//! different keys runs freely.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct KeyedLocks<T>(Mutex<HashMap<String, Arc<tokio::sync::Mutex<T>>>>);

impl<T> Default for KeyedLocks<T> {
    fn default() -> Self {
        KeyedLocks(Mutex::new(HashMap::new()))
    }
}

impl<T: Default> KeyedLocks<T> {
    /// The lock of `key`, holding the value the last holder left (`T::default()` at first).
    pub fn of(&self, key: &str) -> Arc<tokio::sync::Mutex<T>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }
}
