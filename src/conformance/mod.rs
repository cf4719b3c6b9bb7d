//! The store conformance suite: the cases every [`SessionStore`] must pass.
//!
//! Enabled by the `conformance` cargo feature. The same cases run against
//! [`MemoryStore`](crate::MemoryStore), `LogStore` and any
//! store of yours: [`conformance_tests!`](crate::conformance_tests) expands
//! into one `#[test]` per case, each on a fresh store from your factory.
//!
//! ```ignore
//! // tests/conformance.rs of a crate with its own store
//! use sessionlog::conformance::Harness;
//! sessionlog::conformance_tests!(|| Harness::new(MyStore::new()));
//! ```
//!
//! [`model`] holds a deliberately simple reference model of the contract, for
//! property tests and fuzzing that compare a store with it operation by
//! operation.

mod cases;
mod concurrency;
pub mod model;

pub use cases::*;
pub use concurrency::*;

use std::any::Any;
use std::sync::Arc;

use crate::store::{DEFAULT_MAX_EVENT_SIZE, SessionStore};

/// A store under test, with whatever must live as long as it (a temporary
/// directory) and the limits the cases need to know.
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn SessionStore>,
    /// The store's `max_event_size` (the oversized-event case goes one byte past it).
    pub max_event_size: usize,
    // Declared after `store`, so it is dropped after the store is.
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Harness {
    /// Wraps a store with the default 16 MiB event size limit.
    pub fn new(store: impl SessionStore + 'static) -> Harness {
        Harness::from_arc(Arc::new(store))
    }

    /// Wraps an already shared store.
    pub fn from_arc(store: Arc<dyn SessionStore>) -> Harness {
        Harness {
            store,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            _guard: None,
        }
    }

    /// Keeps `guard` (for example a `tempfile::TempDir`) alive until the store is dropped.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Harness {
        self._guard = Some(Box::new(guard));
        self
    }

    /// Tells the cases the store's `max_event_size`.
    pub fn with_max_event_size(mut self, max_event_size: usize) -> Harness {
        self.max_event_size = max_event_size;
        self
    }
}

/// Expands into one `#[test]` per conformance case, each on a fresh
/// [`Harness`](crate::conformance::Harness) from `$make` (a closure or fn
/// returning a `Harness`). Requires the `conformance` feature.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            sequences_start_at_one_per_session,
            caller_sequence_is_overwritten,
            duplicate_in_same_session_returns_original,
            duplicate_in_other_session_returns_original,
            duplicates_within_a_batch_return_the_original,
            batch_results_follow_input_order_across_sessions,
            batch_with_invalid_element_stores_nothing,
            large_batch_stays_contiguous,
            filter_after,
            filter_before,
            filter_after_and_before,
            filter_limit,
            filter_run_id,
            filter_event_type,
            filter_since_is_exclusive_to_the_nanosecond,
            filters_combine_and_limit_applies_last,
            empty_range_returns_at_once,
            unknown_session_is_empty,
            round_trip_is_field_exact,
            timestamps_outside_the_storable_range_are_rejected,
            bad_input_is_rejected_and_changes_nothing,
            oversized_event_is_rejected,
            nesting_deeper_than_readers_allow_is_rejected,
            long_poll_returns_at_once_when_events_exist,
            long_poll_times_out_empty,
            long_poll_is_released_only_by_a_matching_append,
            many_waiters_on_several_sessions_are_all_released,
            writers_are_not_blocked_by_waiters,
            concurrent_appenders_get_contiguous_sequences,
            racing_the_same_new_id_stores_it_once,
            paging_reader_with_long_poll_sees_every_sequence_once,
            readers_never_see_a_gap_while_writers_append,
        );
    };
    (@cases $make:expr; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let make = $make;
                let harness: $crate::conformance::Harness = make();
                $crate::conformance::$case(&harness);
            }
        )*
    };
}
