//! The long-poll loop shared by every store that has a [`SessionNotifier`].

use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::event::Event;
use crate::query::EventQuery;
use crate::store::SessionNotifier;

/// Answers `query` for `session_id`, long-polling when it asks to.
///
/// `run` answers a query at one instant and also returns the session's latest
/// visible sequence at that instant. Nothing up to that sequence matched when
/// the answer is empty, so each re-check only looks past it: a woken waiter
/// scans the new events, never the session again.
pub fn long_poll<F>(
    notifier: &Arc<SessionNotifier>,
    session_id: &str,
    query: &EventQuery,
    mut run: F,
) -> Result<Vec<Event>>
where
    F: FnMut(&EventQuery) -> Result<(Vec<Event>, u64)>,
{
    if query.is_empty_by_construction() {
        return Ok(Vec::new());
    }
    let Some(wait) = query.effective_wait() else {
        return run(query).map(|(events, _)| events);
    };
    // A wait too long to represent is a wait without deadline.
    let deadline = Instant::now().checked_add(wait);
    let waiter = notifier.waiter(session_id);
    let mut q = query.clone();
    loop {
        let seen = waiter.published();
        let (events, latest) = run(&q)?;
        if !events.is_empty() {
            return Ok(events);
        }
        q.after = Some(q.after.unwrap_or(0).max(latest));
        if q.sequence_range().is_none() {
            // The `before` bound is behind us: no event can match any more.
            return Ok(Vec::new());
        }
        if !waiter.wait_past(seen, deadline) {
            return Ok(Vec::new());
        }
    }
}
