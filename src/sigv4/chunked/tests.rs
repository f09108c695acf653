use super::*;
use crate::sigv4::tests::{at, DOCS_SECRET};
use crate::sigv4::{PayloadMode, Scope, SigningKey};

const NOW: &str = "20130524T000000Z";

/// Everything `next` yields until it needs input, after feeding `body` in `piece`-byte pieces.
fn run(mut decoder: ChunkedDecoder, body: &[u8], piece: usize) -> Result<Vec<Decoded>, SigV4Error> {
    let mut out = Vec::new();
    for input in body.chunks(piece.max(1)) {
        decoder.feed(Bytes::copy_from_slice(input));
        while let Some(decoded) = decoder.next()? {
            out.push(decoded);
        }
    }
    decoder.finish()?;
    Ok(coalesce(out))
}

/// Merges adjacent `Data` so results compare independently of piece size.
fn coalesce(items: Vec<Decoded>) -> Vec<Decoded> {
    let mut out: Vec<Decoded> = Vec::new();
    for item in items {
        match (out.last_mut(), item) {
            (Some(Decoded::Data(prev)), Decoded::Data(next)) => {
                let mut joined = prev.to_vec();
                joined.extend_from_slice(&next);
                *prev = Bytes::from(joined);
            }
            (_, item) => out.push(item),
        }
    }
    out
}

fn unsigned(trailer: bool) -> ChunkedDecoder {
    ChunkedDecoder::new(ChunkSigning::Unsigned, trailer)
}

fn data(s: &str) -> Decoded {
    Decoded::Data(Bytes::copy_from_slice(s.as_bytes()))
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, SigV4Error>) -> bool {
    matches!(r, Err(SigV4Error::InvalidChunk(_)))
}

#[test]
fn unsigned_chunks_decode_in_any_piece_size() {
    let body = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    for piece in [1, 2, 3, 7, body.len()] {
        let out = run(unsigned(false), body, piece).unwrap();
        assert_eq!(out, [data("hello, world"), Decoded::End], "{piece}");
    }
}

#[test]
fn boto3_unsigned_trailer_is_returned() {
    let body = b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    for piece in [1, 5, body.len()] {
        let out = run(unsigned(true), body, piece).unwrap();
        let trailers = vec![("x-amz-checksum-crc32".to_owned(), "DUoRhQ==".to_owned())];
        assert_eq!(out, [data("hello world"), Decoded::Trailers(trailers), Decoded::End]);
    }
    // A declared trailer may turn out empty.
    let out = run(unsigned(true), b"0\r\n\r\n", 1).unwrap();
    assert_eq!(out, [Decoded::Trailers(vec![]), Decoded::End]);
}

/// A signed stream the way the Rust SDK writes it: chunk signatures chained from the seed,
/// then `x-amz-checksum-crc32` and the trailer signature.
fn rust_sdk_body(chunks: &[&[u8]], trailers: &[(&str, &str)]) -> (ChunkSigning, Vec<u8>) {
    let scope = Scope::s3(at(NOW), "us-east-1");
    let key = SigningKey::derive(DOCS_SECRET, &scope);
    let seed = [7u8; 32];
    let scope_str = scope.to_string_scope();
    let mut previous = seed;
    let mut body = Vec::new();
    let last: &[u8] = b"";
    for chunk in chunks.iter().copied().chain([last]) {
        let hashes = format!("{EMPTY_SHA256}\n{}", sha256_hex(chunk));
        previous = key.sign(&streaming_string_to_sign("AWS4-HMAC-SHA256-PAYLOAD", NOW, &scope_str, &previous, &hashes));
        body.extend_from_slice(format!("{:x};chunk-signature={}\r\n", chunk.len(), hex::encode(previous)).as_bytes());
        if !chunk.is_empty() {
            body.extend_from_slice(chunk);
            body.extend_from_slice(b"\r\n");
        }
    }
    let canonical: String = trailers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let sts = streaming_string_to_sign(
        "AWS4-HMAC-SHA256-TRAILER",
        NOW,
        &scope_str,
        &previous,
        &sha256_hex(canonical.as_bytes()),
    );
    for (name, value) in trailers {
        body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    body.extend_from_slice(format!("x-amz-trailer-signature:{}\r\n\r\n", hex::encode(key.sign(&sts))).as_bytes());
    let signing = ChunkSigning::Signed { key, scope, amz_date: NOW.to_owned(), seed_signature: seed };
    (signing, body)
}

#[test]
fn rust_sdk_signed_trailer_verifies() {
    let trailers = [("x-amz-checksum-crc32", "DUoRhQ==")];
    for piece in [1, 3, 1000] {
        let (signing, body) = rust_sdk_body(&[b"hello ", b"world"], &trailers);
        let out = run(ChunkedDecoder::new(signing, true), &body, piece).unwrap();
        let expected = vec![("x-amz-checksum-crc32".to_owned(), "DUoRhQ==".to_owned())];
        assert_eq!(out, [data("hello world"), Decoded::Trailers(expected), Decoded::End]);
    }
    let (signing, body) = rust_sdk_body(&[b"hello"], &trailers);
    let tampered = String::from_utf8(body).unwrap().replace("DUoRhQ==", "DUoRhQ=A");
    let r = run(ChunkedDecoder::new(signing, true), tampered.as_bytes(), 4);
    assert_eq!(r.unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    let (signing, body) = rust_sdk_body(&[b"hello"], &trailers);
    let unsigned = String::from_utf8(body).unwrap();
    let (head, _) = unsigned.split_once("x-amz-trailer-signature").unwrap();
    assert!(is_invalid(run(ChunkedDecoder::new(signing, true), format!("{head}\r\n").as_bytes(), 4)));
}

#[test]
fn data_is_handed_out_zero_copy() {
    let input = Bytes::from_static(b"a\r\n0123456789\r\n0\r\n\r\n");
    let mut decoder = unsigned(false);
    decoder.feed(input.clone());
    let Some(Decoded::Data(piece)) = decoder.next().unwrap() else { panic!("expected data") };
    assert_eq!(&piece[..], b"0123456789");
    assert_eq!(piece.as_ptr(), input[3..].as_ptr(), "a slice of the input, not a copy");
    assert_eq!(decoder.next().unwrap(), Some(Decoded::End));
    assert_eq!(decoder.next().unwrap(), None);
    assert_eq!(decoder.decoded_len(), 10);
}

#[test]
fn framing_errors_are_invalid_chunks() {
    let bad: [&[u8]; 9] = [
        b"x\r\nhello\r\n0\r\n\r\n",                // not hex
        b"\r\n",                                   // empty size
        b"11111111111111111\r\n",                  // more than 16 digits
        b"5\nhello\r\n0\r\n\r\n",                  // bare LF
        b"5\r\nhelloXX0\r\n\r\n",                  // no CRLF after data
        b"0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n", // trailer that was not declared
        b"0\r\n\r\nextra",                         // bytes after the end
        b"0 \r\n\r\n",                             // junk after the size
        b"5\r\nhello\r\n0\r\n\r\n\r\n",            // one CRLF too many
    ];
    for body in bad {
        assert!(is_invalid(run(unsigned(false), body, 1)), "{:?}", String::from_utf8_lossy(body));
    }
    assert!(is_invalid(run(unsigned(true), b"0\r\nno-colon\r\n\r\n", 1)));
    assert!(is_invalid(run(unsigned(true), b"0\r\n:empty-name\r\n\r\n", 1)));
}

#[test]
fn lines_and_trailers_are_bounded() {
    let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(5000));
    assert!(is_invalid(run(unsigned(false), long.as_bytes(), 1)));
    assert!(is_invalid(run(unsigned(false), long.as_bytes(), long.len())));
    let fits = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(4000));
    assert!(run(unsigned(false), fits.as_bytes(), 100).is_ok());
    let many: String = (0..40).map(|i| format!("x-t{i}:v\r\n")).collect();
    assert!(is_invalid(run(unsigned(true), format!("0\r\n{many}\r\n").as_bytes(), 64)));
}

#[test]
fn signed_streams_require_valid_chunk_signatures() {
    let (signing, body) = rust_sdk_body(&[b"hello"], &[]);
    let text = String::from_utf8(body).unwrap();
    let no_sig = text.replacen(";chunk-signature=", ";x=", 1);
    assert!(is_invalid(run(ChunkedDecoder::new(signing, true), no_sig.as_bytes(), 3)));
    let (signing, _) = rust_sdk_body(&[b"hello"], &[]);
    let short_sig = text.replacen(";chunk-signature=", ";chunk-signature=0", 1);
    assert!(is_invalid(run(ChunkedDecoder::new(signing, true), short_sig.as_bytes(), 3)));
    let (signing, _) = rust_sdk_body(&[b"hello"], &[]);
    let swapped = text.replacen("hello", "jello", 1);
    let r = run(ChunkedDecoder::new(signing, true), swapped.as_bytes(), 2);
    assert_eq!(r.unwrap_err(), SigV4Error::SignatureDoesNotMatch);
}

#[test]
fn a_bad_chunk_withholds_its_last_piece_and_errors_stick() {
    let (signing, body) = rust_sdk_body(&[b"hello"], &[]);
    let swapped = String::from_utf8(body).unwrap().replacen("hello", "jello", 1);
    let mut decoder = ChunkedDecoder::new(signing, true);
    decoder.feed(Bytes::from(swapped));
    assert_eq!(decoder.next().unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    assert_eq!(decoder.next().unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    assert_eq!(decoder.finish().unwrap_err(), SigV4Error::SignatureDoesNotMatch);
}

#[test]
fn early_eof_and_length_mismatch_are_incomplete_bodies() {
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    for cut in [0, 3, 8, 10, 13] {
        let r = run(unsigned(false), &body[..cut], 1);
        assert!(matches!(r, Err(SigV4Error::IncompleteBody(_))), "cut at {cut}");
    }
    for declared in [4, 6] {
        let r = run(unsigned(false).with_decoded_length(declared), body, 1);
        assert!(matches!(r, Err(SigV4Error::IncompleteBody(_))), "declared {declared}");
    }
    assert!(run(unsigned(false).with_decoded_length(5), body, 1).is_ok());
}

#[test]
fn for_request_picks_the_mode_from_the_payload() {
    let scope = Scope::s3(at(NOW), "us-east-1");
    let mut verified = Verified {
        access_key_id: "AKID".into(),
        scope: scope.clone(),
        amz_date: NOW.into(),
        seed_signature: [0; 32],
        signing_key: SigningKey::derive(DOCS_SECRET, &scope),
        payload: PayloadMode::Unsigned,
        presigned: false,
        signed_headers: crate::sigv4::SignedHeaders::parse("host").unwrap(),
    };
    assert!(ChunkedDecoder::for_request(&verified).is_none());
    verified.payload = PayloadMode::StreamingUnsignedTrailer;
    let decoder = ChunkedDecoder::for_request(&verified).unwrap();
    assert!(decoder.chain.is_none() && decoder.expect_trailer);
    verified.payload = PayloadMode::StreamingSigned { trailer: false };
    let decoder = ChunkedDecoder::for_request(&verified).unwrap();
    assert!(decoder.chain.is_some() && !decoder.expect_trailer);
}
