//! The floor under s3gate's cost per small request: a bare HTTP/1 reverse proxy on the same
//! parts and the same threading, doing nothing s3gate adds (no SigV4 verification or signing,
//! no policy, no metrics, no log line, no timeouts).
//!
//! One current-thread tokio runtime per serving thread, each accepting on its own
//! `SO_REUSEPORT` listener, serving connections with hyper's HTTP/1 server and forwarding every
//! request as it came, head and streamed body, through its own pooled hyper-util client; the
//! answer goes back the same way. `docs/benchmarks.md` compares it with nginx and s3gate on the
//! 4 KiB GET load of `bench/run.sh`: whatever this costs per request, s3gate cannot cost less.
//!
//! ```sh
//! cargo run --release --example hyper_floor -- 127.0.0.1:19040 127.0.0.1:19001 [threads]
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

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
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build(http);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (client, origin) = (client.clone(), origin.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| forward(client.clone(), origin.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn forward(
    client: Client<HttpConnector, Body>,
    origin: String,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("http://{origin}{path}").parse() {
        Ok(uri) => uri,
        Err(_) => return Ok(status(http::StatusCode::BAD_REQUEST)),
    };
    let req = http::Request::from_parts(parts, body.boxed_unsync());
    Ok(match client.request(req).await {
        Ok(resp) => resp.map(|b| b.boxed_unsync()),
        Err(_) => status(http::StatusCode::BAD_GATEWAY),
    })
}

fn status(code: http::StatusCode) -> http::Response<Body> {
    let mut resp = http::Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync());
    *resp.status_mut() = code;
    resp
}
