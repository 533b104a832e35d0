//! What `config-distribution` prints: one line per [`Event`], as text for
//! people or as a JSON object (`{"event": "running", ...}`) for scripts.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

pub use example_support::Output;

/// Something worth a line of output.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `run`: no (valid) config yet; waiting for one.
    Waiting {
        /// Process name.
        name: String,
        /// The config's node.
        path: String,
    },
    /// `run`: the process now runs this version of the config.
    Running {
        /// Process name.
        name: String,
        /// The config node's version (0 when first set, +1 per write).
        version: i32,
        /// zxid of the write that made this version.
        zxid: u64,
        /// The config.
        config: Value,
    },
    /// `set` / `edit`: the config was written.
    Written {
        /// The config's node.
        path: String,
        /// The new version.
        version: i32,
        /// zxid of the write.
        zxid: u64,
        /// What was written.
        config: Value,
    },
    /// `get`: the config now.
    Config {
        /// The config's node.
        path: String,
        /// Its version.
        version: i32,
        /// zxid of its last write.
        zxid: u64,
        /// The config.
        config: Value,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Waiting { name, path } => write!(f, "{name}: waiting for a config at {path}"),
            Event::Running {
                name,
                version,
                config,
                ..
            } => write!(f, "{name}: running config version {version}: {config}"),
            Event::Written {
                path,
                version,
                config,
                ..
            } => write!(f, "{path}: version {version} written: {config}"),
            Event::Config {
                path,
                version,
                config,
                ..
            } => write!(f, "{path} (version {version}): {config}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_renders_as_text_and_json() {
        let event = Event::Running {
            name: "app-1".into(),
            version: 3,
            zxid: 40,
            config: serde_json::json!({"workers": 4}),
        };
        assert_eq!(
            event.to_string(),
            r#"app-1: running config version 3: {"workers":4}"#
        );
        let doc = serde_json::to_value(&event).expect("json");
        assert_eq!(doc["event"], "running");
        assert_eq!(doc["version"], 3);
        assert_eq!(doc["config"]["workers"], 4);
    }
}
