//! An upstream that records every request it gets and answers with a scripted response: for
//! what no real S3 server here can do on demand (region redirects) and for checking exactly
//! what s3gate sent. Tests assert it was (or was not) called.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query as sent on the request line.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The region in the Authorization header's credential scope.
    pub fn signed_region(&self) -> Option<String> {
        let auth = self.header("authorization")?;
        let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
        scope.split('/').nth(2).map(str::to_owned)
    }
}

type Script = dyn Fn(&Recorded) -> (StatusCode, Vec<(&'static str, String)>, String) + Send + Sync;

pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// Answers 200 with an empty body to everything.
    pub async fn ok() -> Self {
        Self::start(|_| (StatusCode::OK, vec![], String::new())).await
    }

    pub async fn start(
        script: impl Fn(&Recorded) -> (StatusCode, Vec<(&'static str, String)>, String) + Send + Sync + 'static,
    ) -> Self {
        let script: Arc<Script> = Arc::new(script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let script = script.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let script = script.clone();
                        let seen = seen.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            // An incomplete body is a request never made: a real server
                            // acts on nothing that did not arrive whole.
                            let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
                                let mut resp = Response::new(Full::new(Bytes::new()));
                                *resp.status_mut() = StatusCode::BAD_REQUEST;
                                return Ok::<_, std::convert::Infallible>(resp);
                            };
                            let rec = Recorded {
                                method: parts.method,
                                target: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            let (status, headers, text) = script(&rec);
                            seen.lock().expect("lock").push(rec);
                            let mut resp = Response::new(Full::new(Bytes::from(text)));
                            *resp.status_mut() = status;
                            for (k, v) in headers {
                                resp.headers_mut().insert(k, v.parse().expect("header"));
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn clear(&self) {
        self.seen.lock().expect("lock").clear();
    }
}
