//! A small cache of panel results keyed by (page, panel, arguments) and the lake generation,
//! so warm pages and their charts answer without re-running DataFusion.
//!
//! An entry is reused while the generation it was computed at is current, and for at most
//! [`MAX_AGE`]; when events keep arriving (the generation moves every batch) an entry younger
//! than [`FRESH_FOR`] is still served, so a busy ingest does not turn the cache off. Public
//! figures may therefore lag ingest by up to `FRESH_FOR`.

use crate::table::Table;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Served regardless of new events while younger than this.
pub const FRESH_FOR: Duration = Duration::from_secs(10);
/// Never served when older than this (the "latest day" and "today" move on).
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Entries kept; the oldest go first.
pub const CAPACITY: usize = 1024;

#[derive(Debug)]
struct Entry {
    generation: u64,
    at: Instant,
    table: Table,
}

/// Panel results by key.
#[derive(Debug, Default)]
pub struct PanelCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PanelCache {
    /// The cached table for `key`, if still valid at `generation`.
    pub fn get(&self, key: &str, generation: u64) -> Option<Table> {
        let map = self.entries.lock().ok()?;
        let e = map.get(key)?;
        let age = e.at.elapsed();
        let valid = age < MAX_AGE && (e.generation == generation || age < FRESH_FOR);
        valid.then(|| e.table.clone())
    }

    pub fn put(&self, key: String, generation: u64, table: Table) {
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if map.len() >= CAPACITY
            && !map.contains_key(&key)
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            key,
            Entry {
                generation,
                at: Instant::now(),
                table,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Cell, Column, Format};

    fn table(v: i64) -> Table {
        let mut t = Table::new(vec![Column::new("v", "V", Format::Plain)]);
        t.push(vec![Cell::Int(v)]);
        t
    }

    #[test]
    fn hits_at_the_same_generation_and_while_fresh() {
        let c = PanelCache::default();
        assert!(c.get("k", 1).is_none());
        c.put("k".into(), 1, table(7));
        assert_eq!(c.get("k", 1), Some(table(7)));
        // A newer generation within FRESH_FOR still hits; other keys miss.
        assert_eq!(c.get("k", 2), Some(table(7)));
        assert!(c.get("other", 1).is_none());
        c.put("k".into(), 2, table(8));
        assert_eq!(c.get("k", 2), Some(table(8)));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn capacity_is_bounded() {
        let c = PanelCache::default();
        for i in 0..(CAPACITY + 10) {
            c.put(format!("k{i}"), 0, table(i as i64));
        }
        assert_eq!(c.len(), CAPACITY);
        assert!(c.get(&format!("k{}", CAPACITY + 9), 0).is_some());
    }
}
