//! The store conformance suite against `LogStore`, each case in a fresh
//! temporary directory, under the default (durable) policy and under
//! `SyncPolicy::Never` (buffered appends served from memory).

use sessionlog::conformance::Harness;
use sessionlog::{LogOptions, LogStore, SyncPolicy};

fn open(opts: LogOptions) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let max = opts.max_event_size;
    let store = LogStore::open_with(dir.path(), opts).expect("open LogStore");
    Harness::new(store).with_guard(dir).with_max_event_size(max)
}

sessionlog::conformance_tests!(|| open(LogOptions::default()));

/// The same cases with buffered appends and small segments (many rollovers).
mod buffered_small_segments {
    use super::*;
    sessionlog::conformance_tests!(|| open(LogOptions {
        sync: SyncPolicy::Never,
        segment_size: 8 * 1024,
        ..LogOptions::default()
    }));
}

/// A smaller event size limit, so the oversized case runs at a non-default size.
mod small_limit {
    use super::*;
    #[test]
    fn oversized_event_is_rejected_at_a_custom_limit() {
        let h = open(LogOptions {
            max_event_size: 4096,
            ..LogOptions::default()
        });
        sessionlog::conformance::oversized_event_is_rejected(&h);
    }
}
