//! CompleteMultipartUpload request bodies (`s3_xml::complete_multipart_upload`).
//!
//! Input: the raw body bytes.
//!
//! Checks: a body that parses names at most 10,000 parts; writing the parts back out as plain
//! XML and parsing that gives the same parts.

use s3gate::fuzzing::xml_text as escape;
use s3gate::s3_xml::{complete_multipart_upload, CompletedPart, MAX_PARTS};

fn render(parts: &[CompletedPart]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for part in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>",
            part.part_number,
            escape(&part.etag)
        ));
        for (algorithm, value) in &part.checksums {
            let element = format!("Checksum{}", algorithm.display_name());
            xml.push_str(&format!("<{element}>{}</{element}>", escape(value)));
        }
        xml.push_str("</Part>");
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let Ok(parts) = complete_multipart_upload(input) else {
        return;
    };
    assert!(parts.len() <= MAX_PARTS, "{} parts accepted", parts.len());
    let again = complete_multipart_upload(render(&parts).as_bytes()).expect("parts written back out parse");
    assert_eq!(again, parts, "the parts read back differ");
}
