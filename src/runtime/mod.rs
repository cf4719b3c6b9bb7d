//! The runtime on top of a [`SessionStore`](crate::SessionStore): what
//! consumers of the log use while agent runs execute.
//!
//! - [`stream_session_events`]: a cursor stream that follows one session
//!   (polling or long-polling the store);
//! - [`subscribe`]: gap-free, duplicate-free subscriptions, backlog then live;
//! - [`SessionManager`]: runs a [`ProviderAdapter`] and persists its events
//!   and the session/run lifecycle;
//! - [`SessionServer`]: one session's runtime, a FIFO queue of runs over a
//!   fixed number of slots;
//! - [`telemetry`]: what the runtime does, as `tracing` events and as
//!   structured [`RuntimeEvent`]s.

mod adapter;
mod follower;
mod manager;
mod scheduler;
mod server;
mod stream;
mod subscription;
pub mod telemetry;

pub use adapter::{
    AdapterEvent, AdapterEventType, CancelToken, EventEmitter, ProviderAdapter, RunContext,
};
pub use manager::{RunResult, SessionManager, new_run_id};
pub use server::{ServerOptions, ServerStatus, SessionServer};
pub use stream::{EventStream, StreamOptions, stream_session_events};
pub use subscription::{
    SessionEvent, SubscribeOptions, Subscription, SubscriptionConfig, subscribe,
    subscribe_with_config,
};
pub use telemetry::{CancelKind, RunOutcome, RuntimeEvent, TelemetrySink};
