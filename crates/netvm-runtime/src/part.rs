//! How a supervisor (the agent) runs a server on a thread: it stops it
//! with a [`Stop`] the server waits on, and reads the counters the server
//! publishes when they change.

use crate::Stop;
use std::sync::{Arc, Mutex};

/// A server's stop handle and its latest counters.
#[derive(Debug, Clone, Default)]
pub struct PartControl {
    /// Stopped to stop the server; the server waits on it with its
    /// sockets.
    pub stop: Stop,
    /// The server's latest counters (JSON).
    pub counters: Arc<Mutex<serde_json::Value>>,
}

impl PartControl {
    /// Whether the supervisor asked the server to stop.
    pub fn stopping(&self) -> bool {
        self.stop.is_stopped()
    }

    /// Publishes the server's counters.
    pub fn publish(&self, counters: serde_json::Value) {
        if let Ok(mut slot) = self.counters.lock() {
            *slot = counters;
        }
    }
}
