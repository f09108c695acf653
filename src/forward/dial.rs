//! Opening the connection to a destination: `--forward-connect-to` overrides first, otherwise
//! the system resolver, all under one connect timeout.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::forward_rules::allow::Destination;
use crate::forward_rules::connect_to::ConnectTo;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("connecting to {0} timed out")]
    Timeout(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
}

/// Connects to `dest`, or to the first matching rule's address.
pub async fn dial(dest: &Destination, rules: &[ConnectTo], timeout: Duration) -> Result<TcpStream, DialError> {
    let (host, port) = match rules.iter().find(|r| r.applies_to(dest)) {
        Some(rule) => (rule.host.as_str(), rule.port.unwrap_or(dest.port)),
        None => (dest.host.as_str(), dest.port),
    };
    let shown = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(DialError::Connect(shown, e)),
        Err(_) => return Err(DialError::Timeout(shown)),
    };
    // A plain-HTTP request is written as headers, then body: Nagle would hold the body back
    // until the headers are acknowledged.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
