//! The store conformance suite against `MemoryStore`.

use sessionlog::MemoryStore;
use sessionlog::conformance::Harness;

sessionlog::conformance_tests!(|| Harness::new(MemoryStore::new()));

/// A smaller limit, so the oversized case also runs at a non-default size.
mod small_limit {
    use super::*;
    #[test]
    fn oversized_event_is_rejected_at_a_custom_limit() {
        let h = Harness::new(MemoryStore::with_max_event_size(4096)).with_max_event_size(4096);
        sessionlog::conformance::oversized_event_is_rejected(&h);
    }
}
