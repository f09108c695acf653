use std::sync::Arc;

use super::*;

/// The ClientHello rustls sends for `name` (a DNS name, or an address: no SNI), as records.
fn rustls_hello(name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("server name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("hello");
    out
}

/// A ClientHello with these extensions (type, body), in one record.
fn hello_with(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut ext = Vec::new();
    for (t, body) in extensions {
        ext.extend_from_slice(&t.to_be_bytes());
        ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
        ext.extend_from_slice(body);
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    records(&hs, hs.len())
}

/// `handshake` framed as handshake records of at most `size` bytes each.
fn records(handshake: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in handshake.chunks(size) {
        out.extend_from_slice(&[0x16, 0x03, 0x01]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn sni(name: &str) -> (u16, Vec<u8>) {
    let mut list = vec![0u8];
    list.extend_from_slice(&(name.len() as u16).to_be_bytes());
    list.extend_from_slice(name.as_bytes());
    let mut body = (list.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(&list);
    (0, body)
}

async fn read_all(bytes: &[u8]) -> Result<Hello, HelloError> {
    let mut reader = bytes;
    read(&mut reader).await
}

#[tokio::test]
async fn a_real_client_hello_gives_its_name_and_is_kept_whole() {
    let bytes = rustls_hello("bucket.s3.us-east-1.amazonaws.com");
    let hello = read_all(&bytes).await.expect("parsed");
    assert_eq!(hello.server_name.as_deref(), Some("bucket.s3.us-east-1.amazonaws.com"));
    assert!(!hello.encrypted_name);
    assert_eq!(hello.bytes, bytes, "every byte read is kept for the real endpoint");
}

#[tokio::test]
async fn a_hello_split_over_records_and_reads_is_put_together() {
    let whole = rustls_hello("s3.amazonaws.com");
    let handshake = &whole[5..];
    let split = records(handshake, 100);
    // One byte per read, as a slow client might send it.
    let (mut client, mut server) = tokio::io::duplex(1);
    let writer = tokio::spawn({
        let split = split.clone();
        async move {
            use tokio::io::AsyncWriteExt;
            for b in split {
                if client.write_all(&[b]).await.is_err() {
                    return;
                }
            }
        }
    });
    let hello = read(&mut server).await.expect("parsed");
    writer.await.expect("writer");
    assert_eq!(hello.server_name.as_deref(), Some("s3.amazonaws.com"));
    assert_eq!(hello.bytes, split);
}

#[tokio::test]
async fn an_address_sends_no_name() {
    let hello = read_all(&rustls_hello("127.0.0.1")).await.expect("parsed");
    assert_eq!(hello.server_name, None);
}

#[tokio::test]
async fn ech_and_esni_are_seen() {
    let ech = hello_with(&[sni("public.example.com"), (0xfe0d, vec![0; 40])]);
    let hello = read_all(&ech).await.expect("parsed");
    assert!(hello.encrypted_name);
    assert_eq!(hello.server_name.as_deref(), Some("public.example.com"));
    let esni = hello_with(&[(0xffce, vec![0; 40])]);
    assert!(read_all(&esni).await.expect("parsed").encrypted_name);
    let plain = hello_with(&[sni("s3.amazonaws.com")]);
    assert!(!read_all(&plain).await.expect("parsed").encrypted_name);
}

#[tokio::test]
async fn not_tls_short_oversized_and_malformed_are_refused() {
    assert_eq!(read_all(b"GET / HTTP/1.1\r\nHost: s3.amazonaws.com\r\n\r\n").await, Err(HelloError::NotTls));
    let whole = rustls_hello("s3.amazonaws.com");
    assert_eq!(read_all(&whole[..whole.len() - 1]).await, Err(HelloError::Closed));
    // A handshake message that says it is 1 MiB long.
    assert_eq!(read_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x10, 0x00, 0x00]).await, Err(HelloError::TooLong));
    // Just past the bound, announced in a header that arrives in pieces.
    let past = records(&[0x01, 0x00, 0x80, 0x00], 1);
    assert_eq!(read_all(&past).await, Err(HelloError::TooLong));
    // A server hello where a client hello belongs.
    let mut wrong = whole.clone();
    wrong[5] = 0x02;
    assert!(read_all(&wrong).await.is_err());
    let bad_name = hello_with(&[(0, vec![0x00, 0x05, 0x00, 0x00, 0x02, 0xff, 0xfe])]);
    assert_eq!(read_all(&bad_name).await, Err(HelloError::Malformed), "a name that is not UTF-8");
    // Found by the tls_client_hello fuzz target: an empty host_name is no name to look up.
    assert_eq!(read_all(&hello_with(&[sni("")])).await, Err(HelloError::Malformed), "an empty name");
}

#[test]
fn an_alert_is_a_fatal_alert_record() {
    assert_eq!(alert(tls_parser::TlsAlertDescription::AccessDenied), [0x15, 3, 3, 0, 2, 2, 49]);
}
