//! One XML reader for request bodies: DeleteObjects (whose keys the policy checks) and
//! CompleteMultipartUpload.
//!
//! What s3gate authorizes must be what S3 acts on, so these bodies are read by a real XML
//! parser (quick-xml), never scanned for tags, and strictly: anything two conforming parsers
//! could read differently is refused rather than guessed.
//!
//! - The root is the operation's element, unprefixed; an `xmlns` declaration, where present,
//!   must name S3's namespace. Prefixed elements (`<x:Key>`) are refused: their namespace is
//!   not S3's. Other attributes are ignored: they never change an element's text.
//! - Only the schema's elements, each at most once where the schema says so; unknown elements
//!   are refused, as S3 refuses a body that does not validate (`MalformedXML`).
//! - A value is its element's character data: text with the five predefined entities and
//!   numeric character references decoded, CDATA sections taken literally, comments skipped,
//!   whitespace kept exactly (keys may start or end with spaces).
//! - No DOCTYPE (so no entity of the document's own), no processing instruction, only XML 1.0
//!   in UTF-8. A raw carriage return inside a value is refused: XML parsers turn `\r\n` into
//!   `\n`, and a key must not depend on whether S3's parser does (`&#13;` stays a CR
//!   everywhere and is fine).
//! - Between elements only whitespace and comments; one root; every element closed.

use std::borrow::Cow;
use std::fmt;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::checksum::Algorithm;
use crate::error::{S3Error, S3ErrorCode};

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

/// The namespace of S3's request documents.
pub const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// S3 deletes at most this many objects per DeleteObjects request.
pub const MAX_DELETE_OBJECTS: usize = 1000;
/// And completes an upload of at most this many parts.
pub const MAX_PARTS: usize = 10_000;

/// A DeleteObjects body: the objects to delete, and whether the answer lists only errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub objects: Vec<ObjectToDelete>,
    pub quiet: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectToDelete {
    pub key: String,
    /// Deleting a given version needs `s3:DeleteObjectVersion`.
    pub version_id: Option<String>,
}

/// One `<Part>` of a CompleteMultipartUpload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// `ChecksumCRC32` and the like, in document order.
    pub checksums: Vec<(Algorithm, String)>,
}

/// Why a body was refused. Clients get S3's `MalformedXML`; the reason is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError(Cow<'static, str>);

impl XmlError {
    fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self(reason.into())
    }

    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed XML: {}", self.0)
    }
}

impl std::error::Error for XmlError {}

impl From<XmlError> for S3Error {
    fn from(_: XmlError) -> Self {
        S3Error::new(
            S3ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }
}

/// Reads a DeleteObjects body:
/// `<Delete><Object><Key/><VersionId/>?<ETag/>?<LastModifiedTime/>?<Size/>?</Object>+<Quiet/>?</Delete>`.
/// One to [`MAX_DELETE_OBJECTS`] objects; `ETag`, `LastModifiedTime` and `Size` (conditions on
/// the delete) are accepted and not returned.
pub fn delete_objects(body: &[u8]) -> Result<DeleteRequest, XmlError> {
    let root = parse(body, "Delete", 1 + (MAX_DELETE_OBJECTS + 1) * 6)?;
    let mut objects = Vec::new();
    let mut quiet = None;
    for child in root.container()? {
        match child.name.as_str() {
            "Object" => {
                if objects.len() == MAX_DELETE_OBJECTS {
                    return Err(XmlError::new("more than 1000 objects"));
                }
                let mut fields = Fields::new(child.container()?);
                let key = fields.one("Key")?.ok_or_else(|| XmlError::new("an Object without a Key"))?;
                let version_id = fields.one("VersionId")?;
                for condition in ["ETag", "LastModifiedTime", "Size"] {
                    fields.one(condition)?;
                }
                fields.done()?;
                objects.push(ObjectToDelete { key, version_id });
            }
            "Quiet" => {
                if quiet.is_some() {
                    return Err(XmlError::new("Quiet given twice"));
                }
                quiet = Some(boolean(&child.leaf()?)?);
            }
            other => return Err(XmlError::new(format!("unexpected element {other} in Delete"))),
        }
    }
    if objects.is_empty() {
        return Err(XmlError::new("no Object to delete"));
    }
    Ok(DeleteRequest { objects, quiet: quiet.unwrap_or(false) })
}

/// Reads a CompleteMultipartUpload body: `<CompleteMultipartUpload><Part>...</Part>+`, each
/// part with one `PartNumber` (1 to 10000), one `ETag` and at most one of each checksum.
pub fn complete_multipart_upload(body: &[u8]) -> Result<Vec<CompletedPart>, XmlError> {
    let root = parse(body, "CompleteMultipartUpload", 1 + (MAX_PARTS + 1) * 8)?;
    let mut parts = Vec::new();
    for child in root.container()? {
        if child.name != "Part" {
            return Err(XmlError::new(format!("unexpected element {} in CompleteMultipartUpload", child.name)));
        }
        if parts.len() == MAX_PARTS {
            return Err(XmlError::new("more than 10000 parts"));
        }
        let mut fields = Fields::new(child.container()?);
        let number = fields.one("PartNumber")?.ok_or_else(|| XmlError::new("a Part without a PartNumber"))?;
        let part_number = number
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PARTS as u32).contains(n) && !number.starts_with('+'))
            .ok_or_else(|| XmlError::new("PartNumber is not a number from 1 to 10000"))?;
        let etag = fields.one("ETag")?.ok_or_else(|| XmlError::new("a Part without an ETag"))?;
        let mut checksums = Vec::new();
        for (element, algorithm) in CHECKSUM_ELEMENTS {
            if let Some(value) = fields.one(element)? {
                checksums.push((*algorithm, value));
            }
        }
        fields.done()?;
        parts.push(CompletedPart { part_number, etag, checksums });
    }
    if parts.is_empty() {
        return Err(XmlError::new("no Part"));
    }
    Ok(parts)
}

const CHECKSUM_ELEMENTS: &[(&str, Algorithm)] = &[
    ("ChecksumCRC32", Algorithm::Crc32),
    ("ChecksumCRC32C", Algorithm::Crc32c),
    ("ChecksumCRC64NVME", Algorithm::Crc64Nvme),
    ("ChecksumSHA1", Algorithm::Sha1),
    ("ChecksumSHA256", Algorithm::Sha256),
];

/// `xs:boolean`, as S3 reads `Quiet`.
fn boolean(value: &str) -> Result<bool, XmlError> {
    match value.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(XmlError::new("Quiet is not true or false")),
    }
}

/// An element as read: its children, and its character data. Both are kept so that the schema
/// can refuse text where it wants elements and elements where it wants text.
#[derive(Debug, Default)]
struct Node {
    name: String,
    children: Vec<Node>,
    text: String,
    /// A raw carriage return in the text (see the module comment).
    raw_cr: bool,
}

impl Node {
    /// The children of an element that holds only elements (and whitespace).
    fn container(self) -> Result<Vec<Node>, XmlError> {
        if !self.text.chars().all(is_xml_whitespace) {
            return Err(XmlError::new(format!("text inside {}", self.name)));
        }
        Ok(self.children)
    }

    /// The text of an element that holds only text.
    fn leaf(self) -> Result<String, XmlError> {
        if !self.children.is_empty() {
            return Err(XmlError::new(format!("an element inside {}", self.name)));
        }
        if self.raw_cr {
            return Err(XmlError::new(format!("a raw carriage return inside {}", self.name)));
        }
        Ok(self.text)
    }
}

/// The children of one element, taken by name: each at most once, none left unknown.
struct Fields(Vec<Node>);

impl Fields {
    fn new(children: Vec<Node>) -> Self {
        Self(children)
    }

    fn one(&mut self, name: &str) -> Result<Option<String>, XmlError> {
        let mut found = None;
        let mut rest = Vec::with_capacity(self.0.len());
        for node in std::mem::take(&mut self.0) {
            if node.name != name {
                rest.push(node);
            } else if found.is_some() {
                return Err(XmlError::new(format!("{name} given twice")));
            } else {
                found = Some(node.leaf()?);
            }
        }
        self.0 = rest;
        Ok(found)
    }

    fn done(self) -> Result<(), XmlError> {
        match self.0.first() {
            None => Ok(()),
            Some(node) => Err(XmlError::new(format!("unexpected element {}", node.name))),
        }
    }
}

/// XML 1.0's `Char`: a conforming parser (S3's) refuses anything else, raw or as a character
/// reference, so a body that carries one is refused here too rather than read one way by the
/// policy and another (or not at all) by S3. quick-xml does not check raw characters itself.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// S3's documents nest three deep at most (root, item, field).
const MAX_DEPTH: usize = 3;

/// Reads the whole document into a tree of at most `max_elements` elements under a root named
/// `root`.
fn parse(body: &[u8], root: &str, max_elements: usize) -> Result<Node, XmlError> {
    let mut reader = Reader::from_reader(body);
    let config = reader.config_mut();
    config.check_comments = true;
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);
    let mut tree = Tree { root, max_elements, elements: 0, open: Vec::new(), done: None };
    let mut first = true;
    loop {
        let event = reader.read_event().map_err(|e| XmlError::new(format!("not well-formed: {e}")))?;
        let at_start = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(decl) if at_start => check_declaration(&decl)?,
            Event::Decl(_) => return Err(XmlError::new("an XML declaration after the start")),
            Event::Start(start) => {
                let node = tree.start(&start)?;
                tree.open.push(node);
            }
            Event::Empty(start) => {
                let node = tree.start(&start)?;
                tree.close(node);
            }
            Event::End(_) => {
                // quick-xml has checked that the name matches the open element.
                let node = tree.open.pop().ok_or_else(|| XmlError::new("an end tag without a start"))?;
                tree.close(node);
            }
            Event::Text(text) => {
                let raw_cr = text.contains(&b'\r');
                let value = text.unescape().map_err(|e| XmlError::new(format!("bad text: {e}")))?;
                tree.text(&value, raw_cr)?;
            }
            Event::CData(cdata) => {
                let value = std::str::from_utf8(&cdata).map_err(|_| XmlError::new("CDATA is not UTF-8"))?;
                if tree.open.is_empty() {
                    return Err(XmlError::new("CDATA outside the root element"));
                }
                tree.text(value, value.contains('\r'))?;
            }
            Event::Comment(_) => {}
            Event::PI(_) => return Err(XmlError::new("a processing instruction")),
            Event::DocType(_) => return Err(XmlError::new("a DOCTYPE")),
            Event::Eof => return tree.finish(),
        }
    }
}

/// The elements read so far: the open ones, innermost last, and the root once it is closed.
struct Tree<'r> {
    root: &'r str,
    max_elements: usize,
    elements: usize,
    open: Vec<Node>,
    done: Option<Node>,
}

impl Tree<'_> {
    fn start(&mut self, start: &BytesStart<'_>) -> Result<Node, XmlError> {
        if self.done.is_some() {
            return Err(XmlError::new("more than one root element"));
        }
        self.elements += 1;
        if self.elements > self.max_elements || self.open.len() == MAX_DEPTH {
            return Err(XmlError::new("too many or too deeply nested elements"));
        }
        element(start, self.open.is_empty(), self.root)
    }

    fn close(&mut self, node: Node) {
        match self.open.last_mut() {
            Some(parent) => parent.children.push(node),
            None => self.done = Some(node),
        }
    }

    fn text(&mut self, value: &str, raw_cr: bool) -> Result<(), XmlError> {
        if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
            return Err(XmlError::new(format!("a character XML does not allow: U+{:04X}", u32::from(c))));
        }
        match self.open.last_mut() {
            Some(node) => {
                node.raw_cr |= raw_cr;
                node.text.push_str(value);
                Ok(())
            }
            None if value.chars().all(is_xml_whitespace) => Ok(()),
            None => Err(XmlError::new("text outside the root element")),
        }
    }

    fn finish(self) -> Result<Node, XmlError> {
        if !self.open.is_empty() {
            return Err(XmlError::new("the document ends inside an element"));
        }
        self.done.ok_or_else(|| XmlError::new("no root element"))
    }
}

/// `<?xml version="1.0" encoding="UTF-8"?>`: XML 1.1 normalizes more line ends (NEL, U+2028)
/// than 1.0, and another encoding would be read here as UTF-8.
fn check_declaration(decl: &quick_xml::events::BytesDecl<'_>) -> Result<(), XmlError> {
    let version = decl.version().map_err(|_| XmlError::new("a declaration without a version"))?;
    if version.as_ref() != b"1.0" {
        return Err(XmlError::new("only XML 1.0 is accepted"));
    }
    if let Some(encoding) = decl.encoding() {
        let encoding = encoding.map_err(|_| XmlError::new("a malformed encoding declaration"))?;
        if !encoding.eq_ignore_ascii_case(b"utf-8") {
            return Err(XmlError::new("only UTF-8 is accepted"));
        }
    }
    Ok(())
}

/// A new element: unprefixed, the expected root at the top, namespace declarations checked.
fn element(start: &BytesStart<'_>, is_root: bool, root: &str) -> Result<Node, XmlError> {
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|_| XmlError::new("an element name is not UTF-8"))?
        .to_owned();
    if name.contains(':') {
        return Err(XmlError::new(format!("a prefixed element {name}")));
    }
    if is_root && name != root {
        return Err(XmlError::new(format!("the root is {name}, not {root}")));
    }
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::new(format!("bad attribute: {e}")))?;
        if attribute.key.as_ref() == b"xmlns" {
            let value = attribute.unescape_value().map_err(|e| XmlError::new(format!("bad attribute: {e}")))?;
            if value != S3_NAMESPACE {
                return Err(XmlError::new("a namespace other than S3's"));
            }
        }
    }
    Ok(Node { name, ..Node::default() })
}
