//! The embedded local S3 store (`s3s-fs`): what `s3gate demo` puts behind the gateway so a
//! newcomer sees it work with nothing else installed, and what tests and benchmarks use as a
//! real S3 server. It checks SigV4 itself, so it also proves s3gate's upstream signatures.
//!
//! It serves on the shared [`listener`], so it backs off on accept errors and
//! drains on stop like every other listener.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::credentials::Credential;
use crate::listener::{self, ConnInfo, Handler, ListenOptions};
use crate::shutdown::Shutdown;

/// Public so that the tests' stand-in for AWS S3 behind the forward and transparent modes (an
/// `s3s-fs` store of its own, over TLS) lists as S3 does too.
pub mod listing;

/// Longer than s3gate's upstream pool keeps an idle connection (50 s), so the store never
/// closes one just as the pool hands it to a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Nobody waits for the store to stop (the demo is exiting, a test is over), so requests in
/// flight may take their time.
const GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store data folder {0}: {1}")]
    Data(String, String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A running store: its address and the switch that stops it.
pub struct Store {
    pub addr: SocketAddr,
    shutdown: Shutdown,
}

impl Store {
    /// Serves `data_dir` as S3 (path style) on `listen`, accepting only `credential`.
    pub async fn start(listen: SocketAddr, data_dir: &Path, credential: &Credential) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Data(data_dir.display().to_string(), e.to_string()))?;
        let fs = s3s_fs::FileSystem::new(data_dir)
            .map_err(|e| StoreError::Data(data_dir.display().to_string(), format!("{e:?}")))?;
        let mut b = S3ServiceBuilder::new(listing::Fs(fs));
        b.set_auth(SimpleAuth::from_single(credential.access_key_id.clone(), credential.secret.expose().to_owned()));
        let service = b.build();
        let tcp = TcpListener::bind(listen).await.map_err(|e| StoreError::Bind(listen, e))?;
        let addr = tcp.local_addr().map_err(|e| StoreError::Bind(listen, e))?;
        let shutdown = Shutdown::default();
        let options =
            ListenOptions { name: "store", grace: GRACE, idle_timeout: IDLE_TIMEOUT, ..ListenOptions::default() };
        tokio::spawn(listener::serve(tcp, options, StoreHandler(service), shutdown.clone()));
        Ok(Store { addr, shutdown })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&self) {
        self.shutdown.trigger();
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The s3s service as a listener's handler.
#[derive(Clone)]
struct StoreHandler(S3Service);

impl Handler for StoreHandler {
    fn call(&self, req: Request<Incoming>, _conn: ConnInfo) -> impl Future<Output = Response<Body>> + Send {
        let answer = hyper::service::Service::call(&self.0, req);
        async move {
            match answer.await {
                Ok(resp) => resp.map(body::boxed),
                // s3s answers S3 errors itself; this is a failure inside it, which hyper would
                // have ended the connection for.
                Err(e) => {
                    tracing::warn!(error = ?e, "store: request failed");
                    let mut resp = Response::new(body::full("internal error\n"));
                    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    resp
                }
            }
        }
    }
}
