//! The duplicate filter's memory: an `event_id` seen within the window counts once.
//!
//! Holds 64-bit hashes (xxh3) of the ids committed but not yet in a published flush, in
//! generations of a few seconds so those a flush has published (and the id index holds, see
//! [`crate::id_index`]) are dropped without scanning. Memory so follows the rows waiting for a
//! flush, not the window. A false positive (two distinct ids with the same 64-bit hash) has odds
//! of about 3 in a million per 10 M ids per window.

use hashbrown::HashSet;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const GENERATION: Duration = Duration::from_secs(5);

/// Recently seen event ids.
#[derive(Debug, Default)]
pub struct DedupFilter {
    seen: HashSet<u64>,
    generations: VecDeque<(Instant, Vec<u64>)>,
}

/// The hash the filter keys on: the event id *within its app*, so one app (one ingest key)
/// cannot make another app's events count as duplicates by sending their ids first.
pub fn id_hash(app_id: &str, event_id: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(app_id.as_bytes());
    h.update(&[0]);
    h.update(event_id.as_bytes());
    h.digest()
}

impl DedupFilter {
    pub fn new() -> Self {
        DedupFilter {
            seen: HashSet::new(),
            generations: VecDeque::new(),
        }
    }

    /// Records `hash`; returns false when it was already present (a duplicate).
    pub fn insert(&mut self, hash: u64, now: Instant) -> bool {
        if !self.seen.insert(hash) {
            return false;
        }
        match self.generations.back_mut() {
            Some((start, hashes)) if now.duration_since(*start) < GENERATION => hashes.push(hash),
            _ => self.generations.push_back((now, vec![hash])),
        }
        true
    }

    /// Forgets hashes inserted by a commit that failed, so a retry is not taken for a duplicate.
    pub fn rollback(&mut self, hashes: &[u64]) {
        for h in hashes {
            self.seen.remove(h);
        }
        // The generation lists may keep the stale hashes; removing a hash twice is harmless.
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.seen.contains(&hash)
    }

    /// Drops the generations that ended before `before` (their ids are in a published flush).
    pub fn forget_before(&mut self, before: Instant) {
        while self.generations.len() > 1 {
            let ended = self.generations.get(1).map(|(start, _)| *start);
            if ended.is_none_or(|end| end > before) {
                break;
            }
            if let Some((_, hashes)) = self.generations.pop_front() {
                for h in hashes {
                    self.seen.remove(&h);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_rollback_and_forgetting_what_a_flush_published() {
        let t0 = Instant::now();
        let mut f = DedupFilter::new();
        assert!(f.insert(id_hash("app", "a"), t0));
        assert!(!f.insert(id_hash("app", "a"), t0));
        // The same id from another app is another event.
        assert!(f.insert(id_hash("other-app", "a"), t0));
        assert_ne!(id_hash("ab", "c"), id_hash("a", "bc"));
        assert!(f.insert(id_hash("app", "b"), t0));
        f.rollback(&[id_hash("app", "b")]);
        assert!(f.insert(id_hash("app", "b"), t0));
        let later = t0 + Duration::from_secs(26 * 3600);
        assert!(f.insert(id_hash("app", "c"), later));
        f.forget_before(later);
        assert_eq!(f.len(), 1);
        assert!(f.insert(id_hash("app", "a"), later));
    }
}
