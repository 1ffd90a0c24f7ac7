//! The segment file format: what a spool record looks like on disk.
//!
//! A segment is an append-only file named after the sequence number of its
//! first record (`00000000000000000042.seg`, twenty digits so that names sort
//! as numbers). It starts with a 24-byte header and continues with frames:
//!
//! ```text
//! header:  magic "KWEXSEG\0" (8) | version u32 LE (4) | reserved u32 (4) | first seq u64 LE (8)
//! frame:   len u32 LE | crc32c(payload) u32 LE | payload (len bytes)
//! payload: seq u64 | appended_at unix ms u64 | id_len u32 | id | index_len u32 | index | body_len u32 | body
//! ```
//!
//! All integers are little-endian. The length comes first so a reader knows
//! how much to read; the CRC covers the whole payload (sequence number
//! included), so a torn write, a zeroed block or a flipped bit is detected
//! instead of being handed to the sink. The append time is not needed to
//! deliver a record; it is stored so that the "oldest unacknowledged" age is
//! still right after a restart, which is exactly when it matters.
//!
//! The ack file uses the same frame, with its own magic (see `ack.rs`).

use std::fmt;

use super::Seq;
use super::crc32c::crc32c;
use crate::document::Record;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"KWEXSEG\0";
/// Format version written in headers; a reader refuses any other.
pub const VERSION: u32 = 1;
/// Bytes of a segment header.
pub const HEADER_LEN: u64 = 24;
/// Bytes before a frame's payload: length and CRC.
pub const FRAME_HEADER_LEN: u64 = 8;
/// Longest payload accepted. A length field above it is damage, not a record:
/// Documents are a few KiB, and the cap keeps a corrupt length from making
/// recovery allocate gigabytes.
pub const MAX_PAYLOAD: u32 = 64 << 20;
/// Payload bytes besides id, index and body: seq, time and three lengths.
const PAYLOAD_FIXED: usize = 8 + 8 + 4 + 4 + 4;

/// The file name of the segment whose first record is `first`.
pub fn file_name(first: Seq) -> String {
    format!("{first:020}.seg")
}

/// The first sequence number encoded in a segment's file name, if `name` is
/// one (exactly twenty digits and `.seg`).
pub fn parse_file_name(name: &str) -> Option<Seq> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A header of `magic`, the version and `value` (a segment's first sequence
/// number; 0 for the ack file).
pub fn header(magic: [u8; 8], value: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&value.to_le_bytes());
    h
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The file is shorter than a header (it was being created at a crash).
    Short(u64),
    /// Not one of ours.
    Magic,
    /// Written by another format version.
    Version(u32),
    /// The header's first sequence number disagrees with the file name.
    FirstSeq(u64),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short(n) => write!(f, "only {n} bytes, shorter than a header"),
            HeaderError::Magic => f.write_str("not a kwex spool file (wrong magic)"),
            HeaderError::Version(v) => write!(
                f,
                "format version {v}, this kwex reads version {VERSION} (written by another kwex version?)"
            ),
            HeaderError::FirstSeq(s) => {
                write!(f, "header says first record {s}, the file name disagrees")
            }
        }
    }
}

/// Checks a header read from a file of `file_len` bytes against `magic` and,
/// when given, the first sequence number the file name promises.
pub fn check_header(
    bytes: &[u8],
    file_len: u64,
    magic: [u8; 8],
    value: Option<u64>,
) -> Result<(), HeaderError> {
    if file_len < HEADER_LEN || bytes.len() < HEADER_LEN as usize {
        return Err(HeaderError::Short(file_len));
    }
    if bytes[..8] != magic {
        return Err(HeaderError::Magic);
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    let found = u64_at(bytes, 16);
    match value {
        Some(v) if v != found => Err(HeaderError::FirstSeq(found)),
        _ => Ok(()),
    }
}

/// Bytes a record occupies on disk, frame header included. This is also the
/// unit of the spool's byte accounting, for both backends.
pub fn frame_len(record: &Record) -> u64 {
    FRAME_HEADER_LEN
        + (PAYLOAD_FIXED + record.id.len() + record.index.len() + record.body.len()) as u64
}

/// Appends a frame whose payload `fill` writes to `buf`.
pub fn encode_frame(buf: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN as usize]);
    fill(buf);
    let payload_start = start + FRAME_HEADER_LEN as usize;
    let len = (buf.len() - payload_start) as u32;
    let crc = crc32c(&buf[payload_start..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends the frame of `record` with sequence number `seq`.
pub fn encode_record(buf: &mut Vec<u8>, seq: Seq, appended_ms: u64, record: &Record) {
    encode_frame(buf, |p| {
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&appended_ms.to_le_bytes());
        for part in [
            record.id.as_bytes(),
            record.index.as_bytes(),
            record.body.as_ref(),
        ] {
            p.extend_from_slice(&(part.len() as u32).to_le_bytes());
            p.extend_from_slice(part);
        }
    });
}

/// Why a frame is not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The length field is impossible (zero-filled block, garbage).
    Length(u32),
    /// The payload does not match its checksum.
    Checksum,
    /// The checksum matches but the fields inside do not add up.
    Layout,
    /// Not the sequence number that must come next.
    Sequence {
        /// What was expected.
        expected: Seq,
        /// What the frame holds.
        found: Seq,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Length(n) => write!(f, "impossible frame length {n}"),
            Damage::Checksum => f.write_str("CRC-32C mismatch"),
            Damage::Layout => f.write_str("fields inside the frame do not add up"),
            Damage::Sequence { expected, found } => {
                write!(f, "sequence number {found} where {expected} was expected")
            }
        }
    }
}

/// The payload length and checksum in a frame header, if the length is
/// possible.
pub fn frame_header(h: [u8; FRAME_HEADER_LEN as usize]) -> Result<(u32, u32), Damage> {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Err(Damage::Length(len));
    }
    Ok((len, crc))
}

/// A record payload, borrowed from the bytes it was read into.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Its sequence number.
    pub seq: Seq,
    /// When it was appended (Unix milliseconds).
    pub appended_ms: u64,
    /// The document id.
    pub id: &'a str,
    /// The target index.
    pub index: &'a str,
    /// The document.
    pub body: &'a [u8],
}

impl Decoded<'_> {
    /// An owned [`Record`] (copies the body: the read buffer is not kept alive
    /// by the records handed out).
    pub fn to_record(&self) -> Record {
        Record {
            id: self.id.to_owned(),
            index: self.index.to_owned(),
            body: bytes::Bytes::copy_from_slice(self.body),
        }
    }
}

/// Checks `payload` against `crc` and splits it into its fields.
pub fn decode_record(payload: &[u8], crc: u32) -> Result<Decoded<'_>, Damage> {
    if crc32c(payload) != crc {
        return Err(Damage::Checksum);
    }
    if payload.len() < PAYLOAD_FIXED {
        return Err(Damage::Layout);
    }
    let seq = u64_at(payload, 0);
    let appended_ms = u64_at(payload, 8);
    let mut at = 16;
    let mut part = || -> Result<&[u8], Damage> {
        let len_end = at + 4;
        let len_bytes = payload.get(at..len_end).ok_or(Damage::Layout)?;
        let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let end = len_end.checked_add(len as usize).ok_or(Damage::Layout)?;
        let bytes = payload.get(len_end..end).ok_or(Damage::Layout)?;
        at = end;
        Ok(bytes)
    };
    let id = std::str::from_utf8(part()?).map_err(|_| Damage::Layout)?;
    let index = std::str::from_utf8(part()?).map_err(|_| Damage::Layout)?;
    let body = part()?;
    if at != payload.len() {
        return Err(Damage::Layout);
    }
    Ok(Decoded {
        seq,
        appended_ms,
        id,
        index,
        body,
    })
}

/// What the start of a buffer holds.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole, intact frame of `len` bytes.
    Frame {
        /// Bytes of the frame, header included.
        len: usize,
        /// Its payload.
        record: Decoded<'a>,
    },
    /// The frame continues past the buffer; `need` bytes make it whole (when
    /// the header was readable).
    Incomplete {
        /// Bytes of the whole frame, if known.
        need: Option<usize>,
    },
    /// A damaged frame.
    Damaged(Damage),
}

/// Parses the frame at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    let Some(h) = buf.first_chunk::<{ FRAME_HEADER_LEN as usize }>() else {
        return Parsed::Incomplete { need: None };
    };
    let (len, crc) = match frame_header(*h) {
        Ok(v) => v,
        Err(d) => return Parsed::Damaged(d),
    };
    let total = FRAME_HEADER_LEN as usize + len as usize;
    let Some(payload) = buf.get(FRAME_HEADER_LEN as usize..total) else {
        return Parsed::Incomplete { need: Some(total) };
    };
    match decode_record(payload, crc) {
        Ok(record) => Parsed::Frame { len: total, record },
        Err(d) => Parsed::Damaged(d),
    }
}

/// Counts the frames that start in `tail` by following length fields, each
/// damaged or partial one included, stopping at the first impossible length.
/// Used to report how many records a truncation dropped.
pub fn count_frames(tail: &[u8]) -> u64 {
    let mut n = 0;
    let mut at = 0usize;
    while at < tail.len() {
        n += 1;
        let Some(h) = tail[at..].first_chunk::<{ FRAME_HEADER_LEN as usize }>() else {
            break;
        };
        let Ok((len, _)) = frame_header(*h) else {
            break;
        };
        at += FRAME_HEADER_LEN as usize + len as usize;
    }
    n
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, body: &str) -> Record {
        Record {
            id: id.into(),
            index: "kwex-events".into(),
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn a_record_survives_encoding_and_parsing() {
        let r = record("uid:1", r#"{"message":"hello"}"#);
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, 1_700_000_000_000, &r);
        assert_eq!(buf.len() as u64, frame_len(&r));
        match parse(&buf) {
            Parsed::Frame { len, record } => {
                assert_eq!(len, buf.len());
                assert_eq!(record.seq, 42);
                assert_eq!(record.appended_ms, 1_700_000_000_000);
                assert_eq!(record.to_record(), r);
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete_never_a_record() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, 0, &record("a", "b"));
        for cut in 0..buf.len() {
            assert!(
                matches!(parse(&buf[..cut]), Parsed::Incomplete { .. }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_payload_bit_is_caught() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 3, &record("id", "{}"));
        for byte in FRAME_HEADER_LEN as usize..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    matches!(parse(&bad), Parsed::Damaged(Damage::Checksum)),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn zeroed_bytes_are_an_impossible_length() {
        assert!(matches!(
            parse(&[0u8; 64]),
            Parsed::Damaged(Damage::Length(0))
        ));
        assert_eq!(count_frames(&[0u8; 64]), 1);
    }

    #[test]
    fn file_names_sort_as_numbers_and_parse_back() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("acks"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn a_header_is_checked_against_the_file_name() {
        let h = header(SEGMENT_MAGIC, 5);
        assert_eq!(check_header(&h, 24, SEGMENT_MAGIC, Some(5)), Ok(()));
        assert_eq!(
            check_header(&h, 24, SEGMENT_MAGIC, Some(6)),
            Err(HeaderError::FirstSeq(5))
        );
        assert_eq!(
            check_header(&h[..10], 10, SEGMENT_MAGIC, Some(5)),
            Err(HeaderError::Short(10))
        );
        assert_eq!(
            check_header(&h, 24, *b"KWEXACK\0", None),
            Err(HeaderError::Magic)
        );
    }

    #[test]
    fn counting_frames_follows_lengths_and_counts_a_partial_one() {
        let mut buf = Vec::new();
        for i in 0..3 {
            encode_record(&mut buf, i, 0, &record("x", "y"));
        }
        assert_eq!(count_frames(&buf), 3);
        assert_eq!(count_frames(&buf[..buf.len() - 1]), 3);
        assert_eq!(count_frames(&buf[..5]), 1);
        assert_eq!(count_frames(&[]), 0);
    }
}
