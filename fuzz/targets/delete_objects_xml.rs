//! DeleteObjects request bodies (`s3_xml::delete_objects`), the XML whose keys the policy checks.
//!
//! Input: the raw body bytes.
//!
//! Checks: a body that parses names 1 to 1,000 objects; writing the parsed request back out as
//! plain XML (every key escaped) and parsing that gives the same request, so what the policy
//! checked is exactly what the document says, however the input spelled it (CDATA, character
//! references, comments).

use s3gate::fuzzing::xml_text as escape;
use s3gate::s3_xml::{delete_objects, DeleteRequest};

fn render(request: &DeleteRequest) -> String {
    let mut xml = String::from("<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for object in &request.objects {
        xml.push_str("<Object><Key>");
        xml.push_str(&escape(&object.key));
        xml.push_str("</Key>");
        if let Some(version) = &object.version_id {
            xml.push_str("<VersionId>");
            xml.push_str(&escape(version));
            xml.push_str("</VersionId>");
        }
        xml.push_str("</Object>");
    }
    if request.quiet {
        xml.push_str("<Quiet>true</Quiet>");
    }
    xml.push_str("</Delete>");
    xml
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let Ok(request) = delete_objects(input) else {
        return;
    };
    assert!((1..=1000).contains(&request.objects.len()), "{} objects accepted", request.objects.len());
    let again = delete_objects(render(&request).as_bytes()).expect("a request written back out parses");
    assert_eq!(again, request, "the request read back differs");
}
