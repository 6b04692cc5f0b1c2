//! Compiled selectors shared by every stream of the process that uses the same one.
//!
//! A URI template or URL pattern compiles to a regex: its program and the matching cache it
//! grows on first use cost tens of KB (measured: about 23 KB per stream with one template, see
//! BENCHMARKS.md "Mercure fan-out"). Thousands of subscribers commonly use the same selector (the
//! topic template of a page), so each distinct one is compiled once and shared through an `Arc`
//! (a clone of a `Regex` would start its own cache). Entries hold weak references: a selector no
//! stream or token uses any more is freed, and its entry is swept as the table grows.
//!
//! Process-wide rather than per hub: a compiled form depends only on its key (the source, and
//! for a URL pattern the base it resolves on), so sharing it is memoization, not state.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

/// Interned values of type `V` under keys of type `K`.
#[derive(Debug)]
pub(crate) struct Interner<K, V> {
    table: Mutex<Table<K, V>>,
}

#[derive(Debug)]
struct Table<K, V> {
    entries: HashMap<K, Weak<V>>,
    /// Entries live at the last sweep: the next sweep comes when the table has doubled since.
    live: usize,
}

impl<K: Eq + Hash, V> Default for Interner<K, V> {
    fn default() -> Self {
        Self { table: Mutex::new(Table { entries: HashMap::new(), live: 0 }) }
    }
}

impl<K: Eq + Hash + Clone, V> Interner<K, V> {
    /// The value interned under `key`, or the one `compile` makes, interned. Compiling happens
    /// outside the lock: two callers racing on a new key may both compile, and the first to
    /// insert wins.
    pub(crate) fn get_or_compile<E>(&self, key: &K, compile: impl FnOnce() -> Result<V, E>) -> Result<Arc<V>, E> {
        if let Some(v) = self.lock().entries.get(key).and_then(Weak::upgrade) {
            return Ok(v);
        }
        let fresh = Arc::new(compile()?);
        let mut table = self.lock();
        if let Some(v) = table.entries.get(key).and_then(Weak::upgrade) {
            return Ok(v);
        }
        table.entries.insert(key.clone(), Arc::downgrade(&fresh));
        if table.entries.len() > 2 * table.live + 64 {
            let table = &mut *table;
            table.entries.retain(|_, w| w.strong_count() > 0);
            table.live = table.entries.len();
            // `retain` never gives room back: a burst of one-off selectors would keep it.
            if table.entries.capacity() > 4 * table.live + 64 {
                table.entries.shrink_to(2 * table.live);
            }
        }
        Ok(fresh)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table<K, V>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many entries the table holds (live or not yet swept).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_compilation_per_key_while_it_is_used_and_dead_entries_are_swept() {
        let interner: Interner<String, String> = Interner::default();
        let compile = |s: &str| Ok::<_, ()>(s.to_uppercase());
        let a = interner.get_or_compile(&"a".to_owned(), || compile("a")).expect("a");
        let again = interner.get_or_compile(&"a".to_owned(), || -> Result<String, ()> { panic!("compiled twice") }).expect("a");
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(interner.get_or_compile(&"e".to_owned(), || Err(())), Err(()), "errors are not interned");
        drop((a, again));
        for i in 0..1_000 {
            drop(interner.get_or_compile(&i.to_string(), || compile("x")).expect("x"));
        }
        assert!(interner.held() <= 2 * 64 + 1, "unused entries are swept as the table grows: {}", interner.held());
        let fresh = interner.get_or_compile(&"a".to_owned(), || compile("b")).expect("recompiled");
        assert_eq!(*fresh, "B", "a dropped value is compiled again");
    }
}
