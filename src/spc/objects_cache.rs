//! Parsed `objects` lists, kept by their YAML text.
//!
//! With rotation on, every pod's volume is mounted again about every minute
//! with the same `objects` text, and parsing that YAML (and compiling its
//! templates) was the largest cost of a Mount answered from cache.  The
//! parsed list depends on nothing but the text, so it is shared.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::{ObjectSpec, SpcError, parse_objects};

/// Longest `objects` text kept; longer ones are parsed every time, so the
/// cache holds at most `entries` × this many bytes of text.
const MAX_CACHED_YAML_BYTES: usize = 64 * 1024;

/// YAML text → its parsed objects.
type Lists = LruCache<Box<str>, Arc<[ObjectSpec]>>;

/// A bounded LRU of parsed `objects` lists.  Errors are not kept, so a
/// fixed SecretProviderClass is seen at once and bad input costs no memory.
pub struct ObjectsCache {
    /// YAML text → its parsed objects; `None` when caching is off.
    entries: Option<Mutex<Lists>>,
}

impl ObjectsCache {
    /// A cache of at most `entries` lists (0 turns it off).
    pub fn new(entries: usize) -> Self {
        Self {
            entries: NonZeroUsize::new(entries).map(|n| Mutex::new(LruCache::new(n))),
        }
    }

    /// The parsed objects of `yaml`, from the cache or parsed now.
    pub fn get_or_parse(&self, yaml: &str) -> Result<Arc<[ObjectSpec]>, SpcError> {
        let Some(entries) = self
            .entries
            .as_ref()
            .filter(|_| yaml.len() <= MAX_CACHED_YAML_BYTES)
        else {
            return parse_objects(yaml).map(Arc::from);
        };
        if let Some(found) = lock(entries).get(yaml) {
            return Ok(found.clone());
        }
        // Parsed outside the lock: concurrent first mounts may both parse,
        // which costs less than making every other mount wait.
        let parsed: Arc<[ObjectSpec]> = parse_objects(yaml)?.into();
        lock(entries).put(yaml.into(), parsed.clone());
        Ok(parsed)
    }
}

/// Locks `entries`, ignoring poisoning (a panic cannot leave an LRU half-updated
/// in a way that matters here: entries are whole values).
fn lock<T>(entries: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    entries.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "- objectName: a\n  secretPath: kv/a\n";

    #[test]
    fn the_same_text_gives_the_same_parsed_list() {
        let cache = ObjectsCache::new(2);
        let first = cache.get_or_parse(YAML).unwrap();
        let second = cache.get_or_parse(YAML).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first[0].name.as_str(), "a");
    }

    #[test]
    fn errors_are_not_kept_and_a_disabled_cache_parses_every_time() {
        let cache = ObjectsCache::new(2);
        assert!(cache.get_or_parse("- objectName: [").is_err());
        assert!(cache.get_or_parse("- objectName: [").is_err());
        let off = ObjectsCache::new(0);
        let first = off.get_or_parse(YAML).unwrap();
        assert!(!Arc::ptr_eq(&first, &off.get_or_parse(YAML).unwrap()));
    }

    #[test]
    fn the_least_recently_used_list_is_dropped() {
        let cache = ObjectsCache::new(1);
        let first = cache.get_or_parse(YAML).unwrap();
        cache
            .get_or_parse("- objectName: b\n  secretPath: kv/b\n")
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &cache.get_or_parse(YAML).unwrap()));
    }
}
