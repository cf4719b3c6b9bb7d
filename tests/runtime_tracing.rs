//! The runtime's `tracing` events: under the target `sessionlog::runtime`,
//! with an `event` field naming what happened. A global subscriber sees the
//! events of run threads too, so this check has its own test binary.

mod runtime_support;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runtime_support::*;
use sessionlog::runtime::ServerOptions;
use sessionlog::{SessionServer, SubscribeOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};

/// Records `(target, event field)` of every tracing event.
struct Capture(Arc<Mutex<Vec<(String, String)>>>);

struct EventField(String);

impl Visit for EventField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "event" {
            self.0 = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "event" && self.0.is_empty() {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut field = EventField(String::new());
        event.record(&mut field);
        self.0
            .lock()
            .push((event.metadata().target().to_string(), field.0));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[test]
fn runtime_emits_tracing_events_under_its_target() {
    let log = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::set_global_default(Capture(log.clone())).expect("first subscriber");
    let gate = GateAdapter::new();
    let opts = ServerOptions {
        max_concurrent_runs: 1,
        ..ServerOptions::default()
    };
    let srv = SessionServer::start(memory(), gate.clone(), "s", opts).unwrap();
    let sub = srv.subscribe(SubscribeOptions::default()).unwrap();
    let a = srv.submit_run(input(0)).unwrap();
    let b = srv.submit_run(input(1)).unwrap();
    srv.cancel_run(&b).unwrap();
    assert!(gate.wait_started(&a));
    gate.release(&a, Action::Complete);
    srv.await_run(&a, LONG).unwrap();
    srv.unsubscribe(sub);
    let names = |log: &Mutex<Vec<(String, String)>>| -> Vec<String> {
        log.lock()
            .iter()
            .filter(|(target, _)| target == "sessionlog::runtime")
            .map(|(_, name)| name.clone())
            .collect()
    };
    let wanted = [
        "server_started",
        "subscribed",
        "run_started",
        "run_enqueued",
        "run_cancel_requested",
        "run_stopped",
        "unsubscribed",
    ];
    let complete = eventually(LONG, || {
        let seen = names(&log);
        wanted.iter().all(|w| seen.iter().any(|n| n == w))
    });
    assert!(complete, "missing some of {wanted:?} in {:?}", names(&log));
    std::thread::sleep(Duration::from_millis(10));
}
