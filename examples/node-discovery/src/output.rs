//! What `node-discovery` prints: one line per [`Event`], as text for people
//! or as a JSON object (`{"event": "response", ...}`) for scripts and tests.

use std::fmt;

use coord_client::recipes::discovery::Instance;
use serde::Serialize;

pub use example_support::Output;

/// Something worth a line of output.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `serve`: the instance is registered (and serving).
    Registered {
        /// The service.
        service: String,
        /// The instance's node.
        path: String,
        /// What was registered.
        instance: Instance,
    },
    /// `serve`: the instance unregistered on shutdown.
    Unregistered {
        /// The service.
        service: String,
        /// The instance id.
        id: String,
    },
    /// `resolve` / `call`: the live instances.
    View {
        /// The service.
        service: String,
        /// Its instances, by id.
        instances: Vec<Instance>,
    },
    /// An instance joined the view.
    Added {
        /// The newcomer.
        instance: Instance,
    },
    /// An instance left the view.
    Removed {
        /// What it last held.
        instance: Instance,
    },
    /// A registered instance changed its data.
    Updated {
        /// Before.
        old: Instance,
        /// After.
        new: Instance,
    },
    /// `call`: a request was answered.
    Response {
        /// Request number.
        seq: u64,
        /// The instance it was sent to.
        instance: String,
        /// Its address.
        address: String,
        /// The id in the answer (the instance now listening there).
        answered_by: String,
        /// The rest of the answer.
        reply: String,
        /// Round trip in milliseconds.
        ms: f64,
    },
    /// `call`: an instance did not answer a request (it is retried on the
    /// next one).
    Failed {
        /// Request number.
        seq: u64,
        /// The instance it was sent to.
        instance: String,
        /// Its address.
        address: String,
        /// What went wrong.
        error: String,
    },
    /// `call`: no live instance to send a request to.
    NoInstance {
        /// Request number.
        seq: u64,
    },
}

fn instance_text(i: &Instance) -> String {
    format!("{} at {} {}", i.id, i.address, i.metadata)
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Registered { path, instance, .. } => {
                write!(f, "registered {path}: {}", instance_text(instance))
            }
            Event::Unregistered { service, id } => write!(f, "unregistered {service}/{id}"),
            Event::View { service, instances } => {
                write!(f, "{service}: {} live instance(s)", instances.len())?;
                for instance in instances {
                    write!(f, "\n  {}", instance_text(instance))?;
                }
                Ok(())
            }
            Event::Added { instance } => write!(f, "+ {}", instance_text(instance)),
            Event::Removed { instance } => write!(f, "- {} ({})", instance.id, instance.address),
            Event::Updated { new, .. } => write!(f, "~ {}", instance_text(new)),
            Event::Response {
                seq,
                answered_by,
                address,
                ms,
                ..
            } => write!(
                f,
                "#{seq} answered by {answered_by} ({address}) in {ms:.1} ms"
            ),
            Event::Failed {
                seq,
                instance,
                error,
                ..
            } => write!(
                f,
                "#{seq} {instance} did not answer ({error}); trying the next one"
            ),
            Event::NoInstance { seq } => write!(f, "#{seq} no live instance"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_as_text_and_json() {
        let response = Event::Response {
            seq: 3,
            instance: "web-1".into(),
            address: "127.0.0.1:7001".into(),
            answered_by: "web-1".into(),
            reply: "hello #3".into(),
            ms: 0.42,
        };
        assert_eq!(
            response.to_string(),
            "#3 answered by web-1 (127.0.0.1:7001) in 0.4 ms"
        );
        let doc = serde_json::to_value(&response).expect("json");
        assert_eq!(
            (doc["event"].as_str(), doc["seq"].as_u64()),
            (Some("response"), Some(3))
        );
        let removed = Event::Removed {
            instance: Instance::new("web-2", "127.0.0.1:7002"),
        };
        let doc = serde_json::to_value(&removed).expect("json");
        assert_eq!(doc["instance"]["id"], "web-2");
    }
}
