//! The same S3 operations over HTTPS (rustls) to the gateway.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::support::{create_bucket, get_bytes, pattern, Gateway};

#[tokio::test]
async fn put_get_list_and_multipart_over_https() {
    let gw = Gateway::start_tls().await;
    assert!(gw.url.starts_with("https://"));
    let s3 = gw.client();
    create_bucket(&s3, "secure").await;
    s3.put_object()
        .bucket("secure")
        .key("small key")
        .body(ByteStream::from_static(b"over tls"))
        .send()
        .await
        .expect("put");
    assert_eq!(get_bytes(&s3, "secure", "small key").await, b"over tls");

    let part = 5 * 1024 * 1024;
    let data = pattern(2 * part + 10, 12);
    let up = s3.create_multipart_upload().bucket("secure").key("mp").send().await.expect("mpu");
    let id = up.upload_id().expect("id");
    let mut done = Vec::new();
    for (i, c) in data.chunks(part).enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("secure")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(c.to_vec()))
            .send()
            .await
            .expect("part");
        done.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_owned)).build());
    }
    s3.complete_multipart_upload()
        .bucket("secure")
        .key("mp")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .expect("complete");
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "secure", "mp").await, data);
    let listed = s3.list_objects_v2().bucket("secure").send().await.expect("list");
    assert_eq!(listed.key_count(), Some(2));
}

#[tokio::test]
async fn file_upload_with_checksum_over_https() {
    // Over HTTPS the SDK sends a file body as unsigned aws-chunked with a trailing checksum.
    let gw = Gateway::start_tls().await;
    let s3 = gw.client();
    create_bucket(&s3, "secure-file").await;
    let data = pattern(2 * 1024 * 1024 + 3, 13);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("f.bin");
    std::fs::write(&path, &data).expect("write");
    s3.put_object()
        .bucket("secure-file")
        .key("f.bin")
        .body(ByteStream::from_path(&path).await.expect("stream"))
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("put");
    let got = get_bytes(&gw.upstream.direct_client(), "secure-file", "f.bin").await;
    assert_eq!(got, data);
    let head = s3
        .head_object()
        .bucket("secure-file")
        .key("f.bin")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(crate::support::raw::crc32_b64(&data).as_str()));
}

/// A TLS front (certificate from a throwaway CA) relaying to the plain store.
async fn tls_front(store: std::net::SocketAddr) -> (std::net::SocketAddr, tempfile::TempDir, std::path::PathBuf) {
    let (dir, ca_pem, cert, key) = crate::support::throwaway_tls("localhost");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca_pem).expect("write ca");
    let acceptor = s3gate::listener::tls_acceptor(&cert, &key).expect("acceptor");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(store).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, dir, ca_path)
}

#[tokio::test]
async fn an_https_upstream_with_a_private_ca() {
    let upstream = crate::support::Upstream::start().await;
    let (front, _dir, ca) = tls_front(upstream.store.addr).await;
    let url = format!("https://localhost:{}", front.port());

    // Without the CA the upstream's certificate is not trusted: a prompt 503, never a hang.
    let untrusted = {
        let mut args = crate::support::base_args(&url);
        args.upstream_connect_timeout = Some(2);
        s3gate::start(s3gate::config::Config::load(&args, &Default::default()).expect("config")).await.expect("start")
    };
    let client = crate::support::sdk_client(
        &format!("http://{}", untrusted.addr),
        crate::support::CLIENT_AKID,
        crate::support::CLIENT_SECRET,
        None,
    );
    let err = client.list_buckets().send().await.expect_err("untrusted upstream");
    assert_eq!(crate::support::code_of(&err), "ServiceUnavailable");

    let mut args = crate::support::base_args(&url);
    args.upstream_ca = Some(ca);
    let trusted =
        s3gate::start(s3gate::config::Config::load(&args, &Default::default()).expect("config")).await.expect("start");
    let s3 = crate::support::sdk_client(
        &format!("http://{}", trusted.addr),
        crate::support::CLIENT_AKID,
        crate::support::CLIENT_SECRET,
        None,
    );
    create_bucket(&s3, "private-ca").await;
    let data = pattern(3_000_000, 14);
    s3.put_object().bucket("private-ca").key("k").body(ByteStream::from(data.clone())).send().await.expect("put");
    assert_eq!(get_bytes(&upstream.direct_client(), "private-ca", "k").await, data);
    assert_eq!(get_bytes(&s3, "private-ca", "k").await, data);
}
