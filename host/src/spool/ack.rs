//! Acknowledgements: which sequence numbers the sink is done with, kept in
//! memory as merged ranges and on disk in the `acks` file.
//!
//! A segment file is deleted as soon as every record in it is acknowledged;
//! that deletion is itself the durable record of those acks. The `acks` file
//! is for the rest: records acknowledged in a segment that still holds
//! unacknowledged ones, so that a restart does not send them again. Losing
//! the tail of this file only causes re-sends, which the document ids make
//! harmless, so it is written by the writer thread in the background and
//! synced with the group commit, never on the caller's path.
//!
//! Layout: a 24-byte header (magic `KWEXACK\0`, version) and frames in the
//! segment frame format whose payloads are `(from u64, to u64)` pairs of
//! half-open ranges `[from, to)`. The file is rewritten compactly (to
//! `acks.tmp`, fsync, rename, fsync the directory) at every open and when it
//! grows, so it holds little more than the ranges still relevant.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::crc32c::crc32c;
use super::segment::{self, FRAME_HEADER_LEN, HEADER_LEN};
use super::{Error, Seq, sync_dir};

/// First bytes of the ack file.
pub const ACK_MAGIC: [u8; 8] = *b"KWEXACK\0";
/// Name of the ack file in the spool directory.
pub const ACK_FILE: &str = "acks";
/// Name of the ack file while it is being rewritten.
pub const ACK_TMP: &str = "acks.tmp";
/// Ranges per frame when writing (64 KiB frames).
const RANGES_PER_FRAME: usize = 4096;

/// A set of sequence numbers stored as merged half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: BTreeMap<Seq, Seq>,
}

impl RangeSet {
    /// Adds `[from, to)`, merging with overlapping and adjacent ranges.
    pub fn insert(&mut self, mut from: Seq, mut to: Seq) {
        if from >= to {
            return;
        }
        if let Some((&s, &e)) = self.ranges.range(..=from).next_back()
            && e >= from
        {
            from = s;
            to = to.max(e);
        }
        while let Some((&s, &e)) = self.ranges.range(from..=to).next() {
            self.ranges.remove(&s);
            to = to.max(e);
        }
        self.ranges.insert(from, to);
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: Seq) -> bool {
        self.ranges
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &e)| seq < e)
    }

    /// One past the largest member.
    pub fn end(&self) -> Option<Seq> {
        self.ranges.last_key_value().map(|(_, &e)| e)
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = (Seq, Seq)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// How many members fall in `[from, to)`.
    pub fn count_in(&self, from: Seq, to: Seq) -> u64 {
        if from >= to {
            return 0;
        }
        let first = self
            .ranges
            .range(..=from)
            .next_back()
            .map_or(from, |(&s, _)| s);
        self.ranges
            .range(first..to)
            .map(|(&s, &e)| e.min(to).saturating_sub(s.max(from)))
            .sum()
    }
}

/// Sorts `seqs` and merges them into half-open ranges.
pub fn coalesce(seqs: &mut [Seq]) -> Vec<(Seq, Seq)> {
    seqs.sort_unstable();
    let mut out: Vec<(Seq, Seq)> = Vec::new();
    for &s in seqs.iter() {
        match out.last_mut() {
            Some((_, to)) if *to >= s => *to = (*to).max(s + 1),
            _ => out.push((s, s + 1)),
        }
    }
    out
}

/// What reading the ack file found.
#[derive(Debug, Default)]
pub struct AckRead {
    /// Every acknowledged range.
    pub acked: RangeSet,
    /// Bytes of a torn or damaged tail that were ignored.
    pub ignored_bytes: u64,
    /// What was wrong, if anything.
    pub damage: Option<String>,
}

/// Reads the ack file of `dir` (an absent file is an empty set). Stops at the
/// first damaged frame: what follows is ignored, which can only cause
/// re-sends.
pub fn read(dir: &Path) -> Result<AckRead, Error> {
    let path = dir.join(ACK_FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AckRead::default()),
        Err(source) => return Err(Error::Read { path, source }),
    }
    let mut out = AckRead::default();
    if let Err(e) = segment::check_header(&bytes, bytes.len() as u64, ACK_MAGIC, None) {
        out.ignored_bytes = bytes.len() as u64;
        out.damage = Some(format!(
            "{}: {e}; acknowledgements in it are ignored",
            path.display()
        ));
        return Ok(out);
    }
    let mut at = HEADER_LEN as usize;
    while at < bytes.len() {
        match parse_ranges(&bytes[at..]) {
            Ok((len, ranges)) => {
                for (from, to) in ranges {
                    out.acked.insert(from, to);
                }
                at += len;
            }
            Err(why) => {
                out.ignored_bytes = (bytes.len() - at) as u64;
                out.damage = Some(format!(
                    "{}: {why} at byte {at}; the {} bytes from there are ignored",
                    path.display(),
                    out.ignored_bytes
                ));
                break;
            }
        }
    }
    Ok(out)
}

/// Parses one ack frame at the start of `buf`: its length and ranges.
fn parse_ranges(buf: &[u8]) -> Result<(usize, Vec<(Seq, Seq)>), String> {
    let h = buf
        .first_chunk::<{ FRAME_HEADER_LEN as usize }>()
        .ok_or("torn frame header")?;
    let (len, crc) = segment::frame_header(*h).map_err(|d| d.to_string())?;
    let total = FRAME_HEADER_LEN as usize + len as usize;
    let payload = buf
        .get(FRAME_HEADER_LEN as usize..total)
        .ok_or("torn frame")?;
    if crc32c(payload) != crc {
        return Err("CRC-32C mismatch".into());
    }
    if payload.len() % 16 != 0 {
        return Err("payload is not whole ranges".into());
    }
    let mut ranges = Vec::with_capacity(payload.len() / 16);
    for pair in payload.chunks_exact(16) {
        let mut a = [0u8; 8];
        a.copy_from_slice(&pair[..8]);
        let from = u64::from_le_bytes(a);
        a.copy_from_slice(&pair[8..]);
        let to = u64::from_le_bytes(a);
        if from >= to {
            return Err(format!("empty range [{from}, {to})"));
        }
        ranges.push((from, to));
    }
    Ok((total, ranges))
}

/// Appends frames holding `ranges` to `buf`.
fn encode_ranges(buf: &mut Vec<u8>, ranges: &[(Seq, Seq)]) {
    for chunk in ranges.chunks(RANGES_PER_FRAME) {
        segment::encode_frame(buf, |p| {
            for &(from, to) in chunk {
                p.extend_from_slice(&from.to_le_bytes());
                p.extend_from_slice(&to.to_le_bytes());
            }
        });
    }
}

/// The open ack file, appended to by the writer thread.
#[derive(Debug)]
pub struct AckLog {
    file: File,
    path: PathBuf,
    len: u64,
    unsynced: bool,
    /// Size of the file right after its last rewrite.
    compact_len: u64,
}

impl AckLog {
    /// Replaces the ack file of `dir` with one holding exactly `acked`,
    /// atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn rewrite(dir: &Path, acked: &RangeSet) -> Result<AckLog, Error> {
        let tmp = dir.join(ACK_TMP);
        let path = dir.join(ACK_FILE);
        let mut buf = segment::header(ACK_MAGIC, 0).to_vec();
        let ranges: Vec<(Seq, Seq)> = acked.ranges().collect();
        encode_ranges(&mut buf, &ranges);
        let write = |source| Error::Write {
            path: tmp.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(write)?;
        file.write_all_at(&buf, 0).map_err(write)?;
        file.sync_data().map_err(|source| Error::Sync {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(write)?;
        sync_dir(dir)?;
        Ok(AckLog {
            file,
            path,
            len: buf.len() as u64,
            unsynced: false,
            compact_len: buf.len() as u64,
        })
    }

    /// Appends `ranges` (not yet synced). On failure the file is cut back to
    /// where it was, so a partial frame never stays in the middle.
    pub fn append(&mut self, ranges: &[(Seq, Seq)]) -> io::Result<()> {
        if ranges.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(ranges.len() * 16 + 16);
        encode_ranges(&mut buf, ranges);
        if let Err(e) = self.file.write_all_at(&buf, self.len) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Whether appended frames wait for a sync.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// Makes the appended frames durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Whether the file has grown enough past its compact size to be rewritten.
    pub fn wants_rewrite(&self) -> bool {
        self.len > (1 << 20) && self.len > 4 * self.compact_len
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_they_overlap_or_touch() {
        let mut s = RangeSet::default();
        s.insert(5, 7);
        s.insert(1, 3);
        s.insert(3, 5);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(1, 7)]);
        s.insert(10, 12);
        s.insert(0, 20);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(0, 20)]);
        s.insert(25, 26);
        assert!(s.contains(0) && s.contains(19) && !s.contains(20) && s.contains(25));
        assert_eq!(s.end(), Some(26));
        assert_eq!(s.ranges().count(), 2);
        assert_eq!(s.count_in(15, 30), 6);
        assert_eq!(s.count_in(20, 25), 0);
        assert_eq!(s.count_in(30, 10), 0);
    }

    #[test]
    fn out_of_order_seqs_coalesce_into_few_ranges() {
        let mut seqs = vec![9, 3, 4, 1, 2, 8, 10, 4];
        assert_eq!(coalesce(&mut seqs), vec![(1, 5), (8, 11)]);
    }

    #[test]
    fn the_ack_file_round_trips_and_a_torn_tail_is_ignored() -> Result<(), Error> {
        let dir = crate::spool::tests::TempDir::new("ackfile");
        let mut set = RangeSet::default();
        set.insert(0, 10);
        let mut log = AckLog::rewrite(dir.path(), &set)?;
        log.append(&[(12, 13), (20, 30)])
            .map_err(|source| Error::Write {
                path: log.path().to_owned(),
                source,
            })?;
        log.sync().map_err(|source| Error::Sync {
            path: log.path().to_owned(),
            source,
        })?;
        let read_back = read(dir.path())?;
        assert_eq!(
            read_back.acked.ranges().collect::<Vec<_>>(),
            vec![(0, 10), (12, 13), (20, 30)]
        );
        assert_eq!(read_back.ignored_bytes, 0);

        let path = dir.path().join(ACK_FILE);
        let len = std::fs::metadata(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
        f.set_len(len.len() - 3).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let torn = read(dir.path())?;
        assert_eq!(
            torn.acked.ranges().collect::<Vec<_>>(),
            vec![(0, 10)],
            "the torn last frame is ignored, the first one kept"
        );
        assert_eq!(torn.ignored_bytes, 8 + 32 - 3);
        assert!(torn.damage.is_some());
        Ok(())
    }
}
