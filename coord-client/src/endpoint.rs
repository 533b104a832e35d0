//! Endpoint strings (`host:port` or a full URI) and the lazy connections
//! behind them: a gRPC channel for the streams, a unary-protocol connection
//! for the unary calls.
//!
//! Both connect lazily, so a client can be built while some members are
//! down; only malformed endpoint strings fail at build time.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::Error;
use crate::unary::UnaryConn;

/// Timeouts applied to every channel of a client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelConfig {
    pub(crate) connect_timeout: Duration,
}

/// One member the client may talk to.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The endpoint as the user gave it (trimmed): used in errors and logs.
    pub(crate) name: String,
    /// gRPC, for the watch and lease keep-alive streams.
    pub(crate) channel: Channel,
    /// The unary-call protocol, for every unary call.
    pub(crate) unary: Arc<UnaryConn>,
}

/// Turns a user-given endpoint into a URI: `host:port` gets `http://`.
pub(crate) fn to_uri(endpoint: &str) -> Result<String, Error> {
    let trimmed = endpoint.trim();
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(invalid("empty endpoint"));
    }
    let uri = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };
    let parsed = Endpoint::from_shared(uri.clone()).map_err(|e| invalid(&e.to_string()))?;
    let parsed = parsed.uri();
    if parsed.host().is_none_or(str::is_empty) {
        return Err(invalid("missing host"));
    }
    if parsed.port_u16().is_none() {
        return Err(invalid("missing port (expected host:port)"));
    }
    if parsed.scheme_str() != Some("http") {
        return Err(invalid("scheme must be http (TLS is not supported yet)"));
    }
    Ok(uri)
}

/// A lazily connecting channel to `endpoint`. Must run inside a tokio runtime.
pub(crate) fn member(endpoint: &str, config: ChannelConfig) -> Result<Member, Error> {
    let uri = to_uri(endpoint)?;
    let parsed = Endpoint::from_shared(uri).map_err(|e| Error::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: e.to_string(),
    })?;
    let addr = parsed
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let channel = parsed
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(Member {
        name: endpoint.trim().to_owned(),
        channel,
        unary: Arc::new(UnaryConn::new(addr, config.connect_timeout)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_gets_a_scheme() {
        assert_eq!(
            to_uri("127.0.0.1:2390").ok().as_deref(),
            Some("http://127.0.0.1:2390")
        );
        assert_eq!(
            to_uri(" localhost:1 ").ok().as_deref(),
            Some("http://localhost:1")
        );
        assert_eq!(
            to_uri("[::1]:2390").ok().as_deref(),
            Some("http://[::1]:2390")
        );
    }

    #[test]
    fn full_uris_are_kept() {
        assert_eq!(
            to_uri("http://coord.example:80").ok().as_deref(),
            Some("http://coord.example:80")
        );
    }

    #[test]
    fn bad_endpoints_are_rejected() {
        for bad in [
            "",
            "  ",
            "localhost",
            "http://host",
            "ftp://h:1",
            "https://h:1",
            "a b:1",
            "host:port",
        ] {
            let err = to_uri(bad).expect_err(bad);
            assert_eq!(err.name(), "InvalidEndpoint", "{bad}");
        }
    }
}
