//! Property test: random operations against `MemoryStore` and the reference model.

use proptest::prelude::*;
use sessionlog::MemoryStore;
use sessionlog::conformance::model::{EventSpec, ModelChecker, Op};

fn spec() -> impl Strategy<Value = EventSpec> {
    (
        prop_oneof![20 => 1u8..4, 1 => Just(0u8)],
        prop_oneof![30 => 1u8..40, 1 => Just(0u8)],
        proptest::option::of(0u8..3),
        0u8..6,
        0u8..8,
        any::<u16>(),
    )
        .prop_map(|(session, id, run, event_type, ts, payload)| EventSpec {
            session,
            id,
            run,
            event_type,
            ts,
            payload,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let seq = || proptest::option::of(0u64..25);
    prop_oneof![
        6 => spec().prop_map(Op::Append),
        3 => proptest::collection::vec(spec(), 0..6).prop_map(Op::Batch),
        5 => (0u8..4, seq(), seq(), proptest::option::of(0u8..3), proptest::option::of(0u8..6),
              proptest::option::of(0u8..8), proptest::option::of(0usize..6))
            .prop_map(|(session, after, before, run, event_type, since, limit)| Op::Query {
                session, after, before, run, event_type, since, limit,
            }),
        1 => (0u8..4).prop_map(|session| Op::Latest { session }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let store = MemoryStore::new();
        let mut checker = ModelChecker::new();
        for op in &ops {
            if let Err(diff) = checker.step(&store, op) {
                return Err(TestCaseError::fail(diff));
            }
        }
        prop_assert!(checker.check_contents(&store).is_ok());
    }
}
