//! The floor under s3gate's cost per small request: a bare HTTP/1 reverse proxy on the same
//! parts and the same threading, doing nothing s3gate adds (no SigV4 verification or signing,
//! no policy, no metrics, no log line, no timeouts).
//!
//! One current-thread tokio runtime per serving thread, each accepting on its own
//! `SO_REUSEPORT` listener, serving connections with hyper's HTTP/1 server and forwarding every
//! request as it came, head and streamed body, over its own upstream connections (hyper's
//! connection API, kept in a list per thread and the last ready one taken, as s3gate's
//! `upstream/pool.rs` does); the answer goes back the same way. `docs/benchmarks.md` compares it with nginx and s3gate on the
//! 4 KiB GET load of `bench/run.sh`: whatever this costs per request, s3gate cannot cost less.
//!
//! ```sh
//! cargo run --release --example hyper_floor -- 127.0.0.1:19040 127.0.0.1:19001 [threads]
//! ```

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(origin)) = (args.next(), args.next()) else {
        eprintln!("usage: hyper_floor LISTEN_ADDR ORIGIN_ADDR [THREADS]");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse().expect("LISTEN_ADDR is host:port");
    let threads = args
        .next()
        .map(|t| t.parse().expect("THREADS is a number"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let origin = origin.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(serve(listen, origin));
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

async fn serve(listen: SocketAddr, origin: String) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(listen).expect("bind");
    let listener = socket.listen(1024).expect("listen");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let origin = origin.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| forward(origin.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

thread_local! {
    /// This thread's upstream connections: busy ones stay listed and are ready again once
    /// their answer has been read.
    static KEPT: RefCell<Vec<SendRequest<Body>>> = const { RefCell::new(Vec::new()) };
}

/// The last kept connection that is ready for a request, or a new one.
async fn checkout(origin: &str) -> Option<SendRequest<Body>> {
    let kept = KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        kept.retain(|c| !c.is_closed());
        let at = kept.iter().rposition(SendRequest::is_ready)?;
        Some(kept.swap_remove(at))
    });
    if kept.is_some() {
        return kept;
    }
    let stream = tokio::net::TcpStream::connect(origin).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

async fn forward(origin: String, req: http::Request<Incoming>) -> Result<http::Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    parts.uri = match parts.uri.path_and_query().map_or(Ok("/".parse().expect("a path")), |p| p.as_str().parse()) {
        Ok(uri) => uri,
        Err(_) => return Ok(status(http::StatusCode::BAD_REQUEST)),
    };
    let Some(mut sender) = checkout(&origin).await else {
        return Ok(status(http::StatusCode::BAD_GATEWAY));
    };
    let sent = sender.send_request(http::Request::from_parts(parts, body.boxed_unsync())).await;
    KEPT.with(|kept| kept.borrow_mut().push(sender));
    Ok(match sent {
        Ok(resp) => resp.map(|b| b.boxed_unsync()),
        Err(_) => status(http::StatusCode::BAD_GATEWAY),
    })
}

fn status(code: http::StatusCode) -> http::Response<Body> {
    let mut resp = http::Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync());
    *resp.status_mut() = code;
    resp
}
