//! Test support: arbitrary `serde_json` values for the JSON writer's and
//! parser's property tests (one definition, so both see the same awkward
//! cases: integer limits, every escape, non-ASCII, nesting).

use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value: finite floats, `i64`/`u64` limits, strings with controls,
/// quotes, backslashes and non-ASCII, nested arrays and objects.
pub(crate) fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(u64::MAX),
            Just(i64::MAX as u64),
            Just(i64::MAX as u64 + 1)
        ]
        .prop_map(Value::from),
        prop_oneof![Just(i64::MIN), Just(-1i64), Just(0i64)].prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[ -~\\x00-\\x1f\"\\\\é🚀\u{2028}]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
