//! The embedded local S3 store (`s3s-fs`): what `s3gate demo` puts behind the gateway so a
//! newcomer sees it work with nothing else installed, and what tests and benchmarks use as a
//! real S3 server. It checks SigV4 itself, so it also proves s3gate's upstream signatures.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::credentials::Credential;

mod listing;
use crate::shutdown::Shutdown;

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
        let listener = TcpListener::bind(listen).await.map_err(|e| StoreError::Bind(listen, e))?;
        let addr = listener.local_addr().map_err(|e| StoreError::Bind(listen, e))?;
        let shutdown = Shutdown::default();
        let mut stop = shutdown.subscribe();
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let (socket, _) = tokio::select! {
                    res = listener.accept() => match res {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                    _ = async { let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ()); } => break,
                };
                let _ = socket.set_nodelay(true);
                let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
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
