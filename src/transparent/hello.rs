//! Reading a TLS ClientHello without terminating TLS: the bytes are kept, to be replayed to the
//! real endpoint, and a copy is parsed (record framing, handshake, extensions: tls-parser) for
//! the server name. Bounded in bytes ([`MAX_HELLO`]) and in time (the caller's timeout).

use tls_parser::{TlsExtension, TlsMessage, TlsMessageHandshake, TlsRecordType};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most read before the ClientHello is whole. Real ones are under 2 KiB (a few more with
/// post-quantum key shares); a record is at most 16 KiB, so this allows two.
pub const MAX_HELLO: usize = 32 * 1024;

/// `encrypted_client_hello` (draft-ietf-tls-esni): the real server name is encrypted.
const ECH: u16 = 0xfe0d;
/// `encrypted_server_name`, ECH's predecessor.
const ESNI: u16 = 0xffce;

/// What the ClientHello says that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Everything read from the client so far, ClientHello included: replayed upstream.
    pub bytes: Vec<u8>,
    /// The first host name of the server_name extension, as sent.
    pub server_name: Option<String>,
    /// It carries ECH or ESNI: the name that counts is hidden.
    pub encrypted_name: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HelloError {
    #[error("not TLS: the first bytes are not a handshake record")]
    NotTls,
    #[error("the client closed before its ClientHello was complete")]
    Closed,
    #[error("the ClientHello is longer than {MAX_HELLO} bytes")]
    TooLong,
    #[error("a malformed ClientHello")]
    Malformed,
    #[error("reading the ClientHello: {0}")]
    Io(String),
}

/// Reads until the first handshake message is whole, then parses it.
pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Hello, HelloError> {
    let mut bytes = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(message) = handshake_message(&bytes)? {
            let (server_name, encrypted_name) = parse(&message)?;
            return Ok(Hello { bytes, server_name, encrypted_name });
        }
        if bytes.len() >= MAX_HELLO {
            return Err(HelloError::TooLong);
        }
        let want = chunk.len().min(MAX_HELLO - bytes.len());
        let n = stream.read(&mut chunk[..want]).await.map_err(|e| HelloError::Io(e.to_string()))?;
        if n == 0 {
            return Err(HelloError::Closed);
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The first handshake message, once the records read so far hold all of it (a ClientHello
/// may be split over several records). `None`: read more.
fn handshake_message(mut bytes: &[u8]) -> Result<Option<Vec<u8>>, HelloError> {
    let mut payload = Vec::new();
    while !bytes.is_empty() {
        let (rest, record) = match tls_parser::parse_tls_raw_record(bytes) {
            Ok(parsed) => parsed,
            Err(tls_parser::nom::Err::Incomplete(_)) => {
                // The record header alone says whether this is TLS at all.
                if bytes.first().is_some_and(|&t| t != u8::from(TlsRecordType::Handshake)) {
                    return Err(HelloError::NotTls);
                }
                return Ok(None);
            }
            Err(_) => return Err(HelloError::NotTls),
        };
        if record.hdr.record_type != TlsRecordType::Handshake {
            return Err(HelloError::NotTls);
        }
        payload.extend_from_slice(record.data);
        if payload.len() >= 4 {
            let len = u32::from_be_bytes([0, payload[1], payload[2], payload[3]]) as usize;
            if len + 4 > MAX_HELLO {
                return Err(HelloError::TooLong);
            }
            if payload.len() >= len + 4 {
                payload.truncate(len + 4);
                return Ok(Some(payload));
            }
        }
        bytes = rest;
    }
    Ok(None)
}

/// The server name and whether it is encrypted, from a whole handshake message.
fn parse(message: &[u8]) -> Result<(Option<String>, bool), HelloError> {
    let hello = match tls_parser::parse_tls_message_handshake(message) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)))) => hello,
        _ => return Err(HelloError::Malformed),
    };
    let extensions = match hello.ext {
        Some(ext) => tls_parser::parse_tls_extensions(ext).map_err(|_| HelloError::Malformed)?.1,
        None => Vec::new(),
    };
    let mut name = None;
    let mut encrypted = false;
    for ext in &extensions {
        match ext {
            TlsExtension::SNI(names) => {
                // Type 0 is host_name, the only type defined; RFC 6066 gives it 1 to 2^16-1
                // bytes, so an empty one is malformed, not a name to look up.
                if let Some((_, raw)) = names.iter().find(|(t, _)| t.0 == 0) {
                    if raw.is_empty() {
                        return Err(HelloError::Malformed);
                    }
                    name = Some(String::from_utf8(raw.to_vec()).map_err(|_| HelloError::Malformed)?);
                }
            }
            TlsExtension::EncryptedServerName { .. } => encrypted = true,
            TlsExtension::Unknown(t, _) if matches!(t.0, ECH | ESNI) => encrypted = true,
            _ => {}
        }
    }
    Ok((name, encrypted))
}

/// A fatal TLS alert record (TLS 1.2 framing, which TLS 1.3 clients read before the
/// handshake): what a refused client gets before the connection closes.
pub fn alert(description: tls_parser::TlsAlertDescription) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description.0]
}

#[cfg(test)]
mod tests;
