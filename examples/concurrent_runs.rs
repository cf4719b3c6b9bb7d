//! Several runs of one session executing concurrently, followed live.
//!
//! A mock provider "streams" a reply word by word; a `SessionServer` with
//! three slots runs four prompts (the fourth waits in the queue), and a
//! subscriber prints every stored event as it arrives, with its sequence
//! number and run id, so the interleaving of the runs is visible.
//!
//! Run it with `cargo run --example concurrent_runs`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sessionlog::runtime::{AdapterEvent, EventEmitter, ProviderAdapter, RunContext, ServerOptions};
use sessionlog::{
    Error, EventType, MemoryStore, Result, SessionServer, SessionStore, SubscribeOptions,
};

/// A provider that answers each prompt by streaming it back, one word at a time.
struct MockProvider;

impl ProviderAdapter for MockProvider {
    fn provider_name(&self) -> &str {
        "mock"
    }

    fn execute(&self, run: &RunContext, events: &dyn EventEmitter) -> Result<Map<String, Value>> {
        let prompt = run
            .input
            .get("prompt")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for word in prompt.split_whitespace() {
            if run.cancel.is_cancelled() {
                return Err(Error::Cancelled(run.run_id.clone()));
            }
            std::thread::sleep(Duration::from_millis(15));
            events.emit(AdapterEvent::new(EventType::MessageStreamed).with_data("delta", word))?;
        }
        let usage = prompt.split_whitespace().count();
        events.emit(AdapterEvent::new("token_usage_updated").with_data("output_tokens", usage))?;
        Ok(Map::from_iter([("reply".to_string(), Value::from(prompt))]))
    }

    fn cancel(&self, _run_id: &str) -> Result<()> {
        // The run checks its CancelToken between words.
        Ok(())
    }
}

fn main() -> Result<()> {
    let store = Arc::new(MemoryStore::new());
    let opts = ServerOptions {
        max_concurrent_runs: 3,
        ..ServerOptions::default()
    };
    let server = SessionServer::start(store.clone(), Arc::new(MockProvider), "demo", opts)?;
    let subscription = server.subscribe(SubscribeOptions::default())?;

    let prompts = [
        "the quick brown fox",
        "jumps over the lazy dog",
        "an append only log",
        "keeps every event in order",
    ];
    let mut runs = Vec::new();
    for (i, prompt) in prompts.iter().enumerate() {
        let input = Map::from_iter([("prompt".to_string(), Value::from(*prompt))]);
        let run_id = format!("run-{}", i + 1);
        server.submit_run_with_id(run_id.clone(), input)?;
        runs.push(run_id);
    }
    let status = server.status();
    println!(
        "in flight: {:?}, queued: {:?}\n",
        status.in_flight, status.queued
    );

    // Print events as they arrive until the runs are done and everything is shown.
    let total = runs.len();
    let printer = std::thread::spawn(move || {
        let mut completed = 0;
        for item in subscription {
            let e = &item.event;
            let delta = e.data.get("delta").and_then(Value::as_str).unwrap_or("");
            println!(
                "seq={:>3}  run={:<6} {:<20} {delta}",
                e.sequence_number.unwrap_or(0),
                e.run_id.as_deref().unwrap_or("-"),
                e.event_type.as_str(),
            );
            if e.event_type == EventType::RunCompleted {
                completed += 1;
                if completed == total {
                    break;
                }
            }
        }
    });
    for run_id in &runs {
        server.await_run(run_id, Duration::from_secs(60))?;
    }
    printer.join().expect("printer thread");
    println!("\n{} events stored", store.get_latest_sequence("demo")?);
    Ok(())
}
