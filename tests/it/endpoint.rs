//! The S3 API through s3gate with aws-sdk-s3, over plain HTTP.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};

use crate::support::{create_bucket, exists, get_bytes, pattern, Gateway};

#[tokio::test]
async fn put_and_get_small_object_with_metadata() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "meta").await;
    s3.put_object()
        .bucket("meta")
        .key("hello.txt")
        .body(ByteStream::from_static(b"hello, s3gate"))
        .content_type("text/plain")
        .metadata("colour", "blue")
        .send()
        .await
        .expect("put");
    let got = s3.get_object().bucket("meta").key("hello.txt").send().await.expect("get");
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.metadata().and_then(|m| m.get("colour")).map(String::as_str), Some("blue"));
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"hello, s3gate");
    // What the store holds, read with the store's own keys, is the same object.
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "meta", "hello.txt").await, b"hello, s3gate");
}

#[tokio::test]
async fn head_and_range_get() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "ranges").await;
    let data = pattern(100_000, 3);
    s3.put_object().bucket("ranges").key("r").body(ByteStream::from(data.clone())).send().await.expect("put");
    let head = s3.head_object().bucket("ranges").key("r").send().await.expect("head");
    assert_eq!(head.content_length(), Some(100_000));
    let part = s3.get_object().bucket("ranges").key("r").range("bytes=1000-1999").send().await.expect("range get");
    assert_eq!(part.content_range(), Some("bytes 1000-1999/100000"));
    assert_eq!(part.body.collect().await.expect("body").into_bytes().as_ref(), &data[1000..2000]);
    let missing = s3.head_object().bucket("ranges").key("nope").send().await;
    assert_eq!(missing.expect_err("404").raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test]
async fn multipart_upload_of_three_parts() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "multi").await;
    let part_size = 5 * 1024 * 1024;
    let data = pattern(2 * part_size + 1234, 9);
    let up = s3.create_multipart_upload().bucket("multi").key("big/object.bin").send().await.expect("create mpu");
    let upload_id = up.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(part_size).enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("multi")
            .key("big/object.bin")
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .expect("upload part");
        parts.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_owned)).build());
    }
    assert_eq!(parts.len(), 3);
    let listed =
        s3.list_parts().bucket("multi").key("big/object.bin").upload_id(upload_id).send().await.expect("list parts");
    assert_eq!(listed.parts().len(), 3);
    s3.complete_multipart_upload()
        .bucket("multi")
        .key("big/object.bin")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .expect("complete");
    assert_eq!(get_bytes(&s3, "multi", "big/object.bin").await, data);
}

#[tokio::test]
async fn list_objects_v2_with_prefix_delimiter_and_continuation() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "listing").await;
    for key in ["a/1", "a/2", "a/3", "a/sub/4", "b/5", "top"] {
        s3.put_object().bucket("listing").key(key).body(ByteStream::from_static(b"x")).send().await.expect("put");
    }
    let page = s3.list_objects_v2().bucket("listing").prefix("a/").delimiter("/").send().await.expect("list");
    let keys: Vec<_> = page.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/1", "a/2", "a/3"]);
    let prefixes: Vec<_> = page.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["a/sub/"]);

    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("listing")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        all.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(all, ["a/1", "a/2", "a/3", "a/sub/4", "b/5", "top"]);
}

#[tokio::test]
async fn copy_object_and_delete_objects() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "copies").await;
    s3.put_object().bucket("copies").key("src").body(ByteStream::from_static(b"original")).send().await.expect("put");
    s3.copy_object().bucket("copies").key("dst").copy_source("copies/src").send().await.expect("copy");
    assert_eq!(get_bytes(&s3, "copies", "dst").await, b"original");

    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("src").build().expect("id"))
        .objects(ObjectIdentifier::builder().key("dst").build().expect("id"))
        .build()
        .expect("delete");
    let out = s3.delete_objects().bucket("copies").delete(delete).send().await.expect("delete objects");
    assert_eq!(out.deleted().len(), 2);
    assert!(!exists(&s3, "copies", "src").await);
    assert!(!exists(&s3, "copies", "dst").await);
}

#[tokio::test]
async fn keys_with_awkward_characters_round_trip() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "odd-keys").await;
    let keys = [
        "with space.txt",
        "unicode/ünïcødé/日本語.txt",
        "punct/+ % ~ = : @ ! $ & ' ( ) * , ;",
        "double//slash",
        "trailing-plus+",
        "percent%20literal",
        "tilde~and.dot",
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = format!("body {i}");
        s3.put_object()
            .bucket("odd-keys")
            .key(*key)
            .body(ByteStream::from(body.clone().into_bytes()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
        assert_eq!(get_bytes(&s3, "odd-keys", key).await, body.as_bytes(), "key {key:?}");
    }
    // The store saw the same keys, not re-encoded ones: each is readable directly.
    let direct = gw.upstream.direct_client();
    for key in keys {
        assert!(exists(&direct, "odd-keys", key).await, "{key:?} upstream");
    }
    // And a listing through the gateway is the store's listing. (s3s-fs keeps objects as
    // files, so it lists `double//slash` as `double/slash`; that is the store's doing, and
    // `forwarded_paths_are_encoded_once_and_never_normalized` shows s3gate sends `//`.)
    let via_gateway = s3.list_objects_v2().bucket("odd-keys").send().await.expect("list");
    let direct_list = direct.list_objects_v2().bucket("odd-keys").send().await.expect("list");
    let names = |out: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output| -> Vec<String> {
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    };
    assert_eq!(names(&via_gateway), names(&direct_list));
    assert_eq!(names(&via_gateway).len(), keys.len());
}

#[tokio::test]
async fn forwarded_paths_are_encoded_once_and_never_normalized() {
    // A recording upstream: it keeps each request line and answers 200.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&got).into_owned();
                let _ = tx.send(text.lines().next().unwrap_or_default().to_owned());
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
            });
        }
    });
    let gw = Gateway::start_with(|a| a.upstream = Some(format!("http://{addr}"))).await;
    let s3 = gw.client();
    let cases = [
        ("double//slash", "/bkt/double//slash"),
        ("sp ace+plus", "/bkt/sp%20ace%2Bplus"),
        ("$pecial=&;,", "/bkt/%24pecial%3D%26%3B%2C"),
        ("ü", "/bkt/%C3%BC"),
        ("~._-", "/bkt/~._-"),
        // Keys are literal, as in S3: `.` and `..` segments and empty segments reach the
        // upstream exactly as written, never normalized on the way.
        ("a/../b", "/bkt/a/../b"),
        ("double//slash/./dot/../x", "/bkt/double//slash/./dot/../x"),
        ("./..", "/bkt/./.."),
    ];
    for (key, expected_path) in cases {
        s3.head_object().bucket("bkt").key(key).send().await.expect("head answered");
        let line = rx.recv().await.expect("the upstream was called");
        assert_eq!(line, format!("HEAD {expected_path} HTTP/1.1"), "key {key:?}");
    }
    let _ = s3.list_objects_v2().bucket("bkt").prefix("a b+c/").delimiter("/").send().await;
    let line = rx.recv().await.expect("the upstream was called");
    assert!(line.contains("prefix=a%20b%2Bc%2F"), "{line}");
    assert!(line.contains("delimiter=%2F"), "{line}");
    assert!(line.contains("list-type=2"), "{line}");
}

#[tokio::test]
async fn signed_aws_chunked_upload_with_trailing_checksum_from_a_file() {
    // The Rust SDK sends a file body over HTTP as signed aws-chunked with a signed trailer
    // carrying x-amz-checksum-crc32.
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "chunked").await;
    let data = pattern(3 * 1024 * 1024 + 17, 5);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("upload.bin");
    std::fs::write(&path, &data).expect("write");
    let body = ByteStream::from_path(&path).await.expect("stream");
    s3.put_object()
        .bucket("chunked")
        .key("file.bin")
        .body(body)
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("chunked put");
    let got = get_bytes(&gw.upstream.direct_client(), "chunked", "file.bin").await;
    assert_eq!(got.len(), data.len(), "no chunk framing in the stored object");
    assert_eq!(got, data);
    // The checksum reached the upstream.
    let head = s3
        .head_object()
        .bucket("chunked")
        .key("file.bin")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(crate::support::raw::crc32_b64(&data).as_str()));
}

#[tokio::test]
async fn list_buckets_and_delete_bucket() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "one").await;
    create_bucket(&s3, "two").await;
    let out = s3.list_buckets().send().await.expect("list buckets");
    let names: Vec<_> = out.buckets().iter().filter_map(|b| b.name()).collect();
    assert!(names.contains(&"one") && names.contains(&"two"), "{names:?}");
    s3.delete_bucket().bucket("two").send().await.expect("delete bucket");
    let out = s3.list_buckets().send().await.expect("list buckets");
    assert!(!out.buckets().iter().any(|b| b.name() == Some("two")));
}

#[tokio::test]
async fn virtual_hosted_style_requests_under_a_gateway_domain() {
    use crate::support::raw;
    use std::time::SystemTime;
    let gw = Gateway::start_with(|a| a.domain = vec!["s3.gateway.test".into()]).await;
    create_bucket(&gw.client(), "vhost").await;
    let host = format!("vhost.s3.gateway.test:{}", gw.addr().port());
    let body = b"virtual hosted".to_vec();
    let mut req = raw::request("PUT", gw.addr(), "/dir/obj%20one");
    req.headers_mut().insert("host", host.parse().expect("host"));
    req.headers_mut().insert("content-length", body.len().to_string().parse().expect("len"));
    raw::sign(&mut req, &raw::sha256_hex(&body), SystemTime::now(), crate::support::CLIENT_SECRET);
    let resp = raw::send(req, body.clone()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    // Stored as bucket `vhost`, key `dir/obj one`: read it back path-style.
    assert_eq!(get_bytes(&gw.client(), "vhost", "dir/obj one").await, body);

    let mut req = raw::request("GET", gw.addr(), "/?list-type=2&prefix=dir%2F");
    req.headers_mut().insert("host", host.parse().expect("host"));
    raw::sign(&mut req, &raw::sha256_hex(b""), SystemTime::now(), crate::support::CLIENT_SECRET);
    let resp = raw::send(req, "").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("<Key>dir/obj one</Key>"), "{}", resp.body);
}

#[tokio::test]
async fn listings_carry_etags_and_an_empty_delimiter_means_none() {
    // What rclone (`delimiter=`) and s3cmd (ETag in listings) rely on, as S3 does it.
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "etags").await;
    let put = s3
        .put_object()
        .bucket("etags")
        .key("dir/a.txt")
        .body(ByteStream::from_static(b"aaa"))
        .send()
        .await
        .expect("put");
    let listed = s3.list_objects_v2().bucket("etags").delimiter("").send().await.expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/a.txt"]);
    assert!(listed.common_prefixes().is_empty());
    assert_eq!(listed.contents()[0].e_tag(), put.e_tag());
    let v1 = s3.list_objects().bucket("etags").send().await.expect("list v1");
    assert_eq!(v1.contents()[0].e_tag(), put.e_tag());
}
