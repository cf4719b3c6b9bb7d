//! The main job in one file: append events to a session, read them back by
//! cursor, and follow the session live while another thread appends.
//!
//! Run: `cargo run --example quickstart`

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sessionlog::{Event, EventQuery, EventType, MemoryStore, SessionStore};

fn main() -> sessionlog::Result<()> {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let session = "demo-session";

    // 1. Append: each event gets the session's next sequence number.
    for (i, t) in [
        EventType::SessionCreated,
        EventType::SessionStarted,
        EventType::MessageSent,
    ]
    .into_iter()
    .enumerate()
    {
        let e = store.append_event_with_sequence(Event::new(session, t).with_data("step", i))?;
        println!(
            "appended  seq={} type={}",
            e.sequence_number.unwrap_or(0),
            e.event_type
        );
    }

    // 2. Read by cursor: everything after sequence 1, a page of up to 100.
    for e in store.get_events(session, &EventQuery::new().after(1).limit(100))? {
        println!(
            "read      seq={} type={}",
            e.sequence_number.unwrap_or(0),
            e.event_type
        );
    }

    // 3. Follow: long-poll from the cursor while a writer appends.
    let writer = {
        let store = Arc::clone(&store);
        thread::spawn(move || {
            for i in 0..5 {
                thread::sleep(Duration::from_millis(50));
                let e = Event::new(session, EventType::MessageStreamed).with_data("chunk", i);
                store.append_event_with_sequence(e).expect("append");
            }
        })
    };
    let mut cursor = store.get_latest_sequence(session)?;
    while cursor < 8 {
        let q = EventQuery::new()
            .after(cursor)
            .wait_timeout(Duration::from_secs(5));
        for e in store.get_events(session, &q)? {
            cursor = e.sequence_number.unwrap_or(cursor);
            println!(
                "followed  seq={} type={} data={:?}",
                cursor, e.event_type, e.data
            );
        }
    }
    writer.join().expect("writer thread");
    Ok(())
}
