//! The transparent listener's ClientHello reader (`transparent::hello::read`): the first bytes
//! of every connection to it, read before anything is known about the client.
//!
//! Input: the bytes a client sends first.
//!
//! Checks: the reader never panics and never reads past what it needs: what it keeps to replay
//! upstream is exactly a prefix of the input, within `MAX_HELLO` plus one read; a server name it
//! reports appears verbatim in those bytes.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use s3gate::transparent::hello::{read, MAX_HELLO};

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let mut stream = input;
    // Reading from a slice never waits: one poll finishes.
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(result) = pin!(read(&mut stream)).poll(&mut cx) else {
        panic!("reading from a slice did not finish");
    };
    let Ok(hello) = result else { return };
    assert!(input.starts_with(&hello.bytes), "the kept bytes are not what the client sent");
    assert!(hello.bytes.len() <= MAX_HELLO + 16 * 1024 + 5, "{} bytes kept", hello.bytes.len());
    if let Some(name) = &hello.server_name {
        let found = hello.bytes.windows(name.len().max(1)).any(|w| w == name.as_bytes());
        assert!(found, "server name {name:?} is not in the ClientHello");
    }
}
