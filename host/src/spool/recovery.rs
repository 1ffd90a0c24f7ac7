//! Opening a spool directory: lock it, read the ack file, check every segment
//! frame by frame, repair what a crash can leave behind, and report the rest.
//!
//! What a crash can leave, and what recovery does about it:
//!
//! - **A torn tail** in the last segment (a write cut short, a block of
//!   zeros after a power cut, a flipped bit): the file is cut at the first
//!   frame that is incomplete or fails its CRC, and the writer appends after
//!   it. Every intact record before the cut is kept. The cut bytes and the
//!   frames that started in them are reported; a record whose append had
//!   returned cannot be among them unless the disk lost synced data.
//! - **A torn header** of the last segment (a crash while creating it): the
//!   header is written again.
//! - **Damage in an older segment** (anything but the last): nothing is cut,
//!   the records before the damage are kept, the rest of that segment is
//!   reported lost (their count is exact: the next segment's name says where
//!   it ends), and every later segment is read normally. There is no attempt
//!   to find the next valid frame by scanning: a false match would hand out
//!   garbage, and damage there means the disk lost synced data.
//! - **A torn ack file**: its intact frames are used, the rest ignored (at
//!   worst some records are sent again).
//!
//! Recovery reads every segment once (about as fast as the disk reads), so a
//! full 1 GiB spool takes seconds to open.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::ack::{self, AckLog, RangeSet};
use super::segment::{self, Damage, FRAME_HEADER_LEN, HEADER_LEN, HeaderError, SEGMENT_MAGIC};
use super::{Ages, Error, Metrics, Recovery, Seq, Settings, sync_dir};

/// Name of the lock file.
pub const LOCK_FILE: &str = "LOCK";

/// What the spool knows about one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegMeta {
    /// Sequence number of its first record (its file name).
    pub first: Seq,
    /// One past its last record (`first` when empty). For a damaged older
    /// segment: the next segment's first, the records in between being lost.
    pub next: Seq,
    /// File size, counted against `max_bytes`.
    pub len: u64,
    /// Bytes a reader may read: durable, and before any damage.
    pub readable: u64,
    /// Records neither acknowledged nor lost.
    pub unacked: u64,
    /// Their framed bytes.
    pub unacked_bytes: u64,
    /// Damage was found: nothing past `readable` is read.
    pub damaged: bool,
}

/// Everything the running spool starts from.
#[derive(Debug)]
pub struct Recovered {
    /// The held lock on the directory (released when dropped).
    pub lock: File,
    /// Live segments, oldest first; the last one is where appends go.
    pub segments: VecDeque<SegMeta>,
    /// Acknowledged sequence numbers (everything below the oldest segment
    /// included).
    pub acked: RangeSet,
    /// Append times of the unacknowledged records.
    pub ages: Ages,
    /// The ack file, rewritten compactly.
    pub ack_log: AckLog,
    /// What was found, for the caller.
    pub report: Recovery,
}

/// Opens and recovers the spool directory of `settings`.
pub fn recover(settings: &Settings, metrics: &Metrics) -> Result<Recovered, Error> {
    let dir = settings.dir.as_path();
    std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
        dir: dir.to_owned(),
        source,
    })?;
    let lock = lock(dir)?;
    match std::fs::remove_file(dir.join(ack::ACK_TMP)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::NotWritable {
                dir: dir.to_owned(),
                source,
            });
        }
    }
    let names = list(dir)?;
    let mut report = Recovery::default();
    let acks = ack::read(dir)?;
    report.truncated_bytes += acks.ignored_bytes;
    report.damaged.extend(acks.damage);
    let mut acked = acks.acked;

    let mut segments = VecDeque::with_capacity(names.len());
    let mut ages = Ages::default();
    for (i, &first) in names.iter().enumerate() {
        let next_first = names.get(i + 1).copied();
        let meta = scan(dir, first, next_first, &acked, &mut ages, &mut report)?;
        segments.push_back(meta);
    }

    // Sequence numbers are never reused: an acknowledgement on disk may name a
    // record lost in a cut tail, and must not match a new record.
    let last_next = segments.back().map(|s| s.next);
    let next_seq = last_next.unwrap_or(0).max(acked.end().unwrap_or(0));
    if last_next != Some(next_seq) {
        segments.push_back(create_segment(dir, next_seq)?);
    }
    if let Some(front) = segments.front() {
        acked.insert(0, front.first);
    }
    let ack_log = AckLog::rewrite(dir, &acked)?;

    report.segments = segments.len();
    report.records = segments.iter().map(|s| s.unacked).sum();
    metrics.recoveries.inc();
    metrics.truncated_bytes.inc_by(report.truncated_bytes);
    metrics.drop_documents("corrupt", report.dropped_records);
    Ok(Recovered {
        lock,
        segments,
        acked,
        ages,
        ack_log,
        report,
    })
}

/// Takes the directory's lock, so that two processes never write one log.
fn lock(dir: &Path) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(|source| Error::NotWritable {
            dir: dir.to_owned(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Lock {
            dir: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::NotWritable {
            dir: dir.to_owned(),
            source,
        }),
    }
}

/// The first sequence numbers of the segment files in `dir`, sorted.
fn list(dir: &Path) -> Result<Vec<Seq>, Error> {
    let list_err = |source| Error::List {
        dir: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let name = entry.file_name();
        match name.to_str().and_then(segment::parse_file_name) {
            Some(first) => names.push(first),
            None => {
                let known = name == LOCK_FILE || name == ack::ACK_FILE;
                if !known {
                    tracing::debug!(file = ?name, "ignoring a file that is not part of the spool");
                }
            }
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Creates an empty segment starting at `first`, durably (file and directory
/// entry).
pub fn create_segment(dir: &Path, first: Seq) -> Result<SegMeta, Error> {
    let path = dir.join(segment::file_name(first));
    let write = |source| Error::NotWritable {
        dir: dir.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(write)?;
    file.write_all_at(&segment::header(SEGMENT_MAGIC, first), 0)
        .map_err(write)?;
    file.sync_data().map_err(|source| Error::Sync {
        path: path.clone(),
        source,
    })?;
    sync_dir(dir)?;
    Ok(empty_meta(first))
}

fn empty_meta(first: Seq) -> SegMeta {
    SegMeta {
        first,
        next: first,
        len: HEADER_LEN,
        readable: HEADER_LEN,
        unacked: 0,
        unacked_bytes: 0,
        damaged: false,
    }
}

/// Why a scan stopped before the end of a file.
enum Stop {
    /// The file ends inside a frame.
    Torn,
    /// A complete frame is damaged.
    Damaged(Damage),
}

/// Checks one segment, repairing it if it is the last (`next_first` is
/// `None`), and returns what it holds.
fn scan(
    dir: &Path,
    first: Seq,
    next_first: Option<Seq>,
    acked: &RangeSet,
    ages: &mut Ages,
    report: &mut Recovery,
) -> Result<SegMeta, Error> {
    let path = dir.join(segment::file_name(first));
    let read_err = |source| Error::Read {
        path: path.clone(),
        source,
    };
    let file = File::open(&path).map_err(read_err)?;
    let file_len = file.metadata().map_err(read_err)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut head = Vec::with_capacity(HEADER_LEN as usize);
    (&mut reader)
        .take(HEADER_LEN)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    if let Err(e) = segment::check_header(&head, file_len, SEGMENT_MAGIC, Some(first)) {
        if let HeaderError::Version(_) = e {
            return Err(Error::Read {
                path: path.clone(),
                source: io::Error::other(e.to_string()),
            });
        }
        return Ok(match next_first {
            None => {
                // The last segment, torn while being created: start it again.
                report.truncated_bytes += file_len;
                if !matches!(e, HeaderError::Short(_)) {
                    report.damaged.push(format!(
                        "{}: {e}; its {file_len} bytes were replaced by an empty segment",
                        path.display()
                    ));
                }
                create_segment(dir, first)?
            }
            Some(nf) => {
                let lost = (nf - first) - acked.count_in(first, nf);
                report.dropped_records += lost;
                report.damaged.push(format!(
                    "{}: {e}; its records {first}..{nf} are lost ({lost} unacknowledged)",
                    path.display()
                ));
                SegMeta {
                    next: nf,
                    len: file_len,
                    readable: 0,
                    damaged: true,
                    ..empty_meta(first)
                }
            }
        });
    }

    let mut meta = SegMeta {
        len: file_len,
        ..empty_meta(first)
    };
    let mut offset = HEADER_LEN;
    let mut payload = Vec::new();
    let stop = loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break None;
        }
        if remaining < FRAME_HEADER_LEN {
            break Some(Stop::Torn);
        }
        let mut h = [0u8; FRAME_HEADER_LEN as usize];
        reader.read_exact(&mut h).map_err(read_err)?;
        let (len, crc) = match segment::frame_header(h) {
            Ok(v) => v,
            Err(d) => break Some(Stop::Damaged(d)),
        };
        let total = FRAME_HEADER_LEN + u64::from(len);
        if remaining < total {
            break Some(Stop::Torn);
        }
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload).map_err(read_err)?;
        let record = match segment::decode_record(&payload, crc) {
            Ok(r) => r,
            Err(d) => break Some(Stop::Damaged(d)),
        };
        let beyond_next = next_first.is_some_and(|nf| meta.next >= nf);
        if record.seq != meta.next || beyond_next {
            break Some(Stop::Damaged(Damage::Sequence {
                expected: meta.next,
                found: record.seq,
            }));
        }
        if !acked.contains(record.seq) {
            meta.unacked += 1;
            meta.unacked_bytes += total;
            ages.note(record.seq, record.appended_ms);
        }
        meta.next += 1;
        offset += total;
    };
    meta.readable = offset;
    let Some(stop) = stop else {
        return Ok(meta);
    };

    match next_first {
        None => {
            let cut = file_len - offset;
            let mut tail = Vec::new();
            let mut file = reader.into_inner();
            file.seek(SeekFrom::Start(offset)).map_err(read_err)?;
            file.read_to_end(&mut tail).map_err(read_err)?;
            let dropped = segment::count_frames(&tail);
            let repair_err = |source| Error::Repair {
                path: path.clone(),
                source,
            };
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(repair_err)?;
            file.set_len(offset).map_err(repair_err)?;
            file.sync_data().map_err(repair_err)?;
            meta.len = offset;
            report.truncated_bytes += cut;
            report.dropped_records += dropped;
            match stop {
                Stop::Torn => tracing::info!(
                    file = %path.display(),
                    offset,
                    cut,
                    "cut the torn tail of the last spool segment (a crash during a write)"
                ),
                Stop::Damaged(d) => report.damaged.push(format!(
                    "{}: {d} at byte {offset}; cut the last {cut} bytes ({dropped} records): a torn write at a crash, or damage",
                    path.display()
                )),
            }
        }
        Some(nf) => {
            let lost = (nf - meta.next) - acked.count_in(meta.next, nf);
            let why = match stop {
                Stop::Torn => "the file ends inside a frame".to_owned(),
                Stop::Damaged(d) => d.to_string(),
            };
            report.dropped_records += lost;
            report.damaged.push(format!(
                "{}: {why} at byte {offset}; records {}..{nf} are lost ({lost} unacknowledged), the records before are kept",
                path.display(),
                meta.next
            ));
            meta.next = nf;
            meta.damaged = true;
        }
    }
    Ok(meta)
}

/// The path of segment `first` in `dir`.
pub fn segment_path(dir: &Path, first: Seq) -> PathBuf {
    dir.join(segment::file_name(first))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use super::super::tests::{TempDir, open, record, records, segment_files, settings, take};
    use super::super::{Settings, segment};
    use super::*;

    /// Copies the spool files of `from` into `to`.
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    fn flip_byte(path: &Path, at: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at as usize] ^= 0x20;
        std::fs::write(path, bytes).unwrap();
    }

    fn frame(i: u64) -> u64 {
        segment::frame_len(&record(i))
    }

    #[tokio::test]
    async fn a_torn_tail_at_every_byte_of_the_last_record_keeps_every_intact_record() {
        let pristine = TempDir::new("torn-pristine");
        {
            let (spool, _, _) = open(settings(pristine.path())).await;
            spool.append(records(0..5)).await.unwrap();
        }
        let seg = segment_files(pristine.path()).pop().unwrap();
        let full_len = std::fs::metadata(&seg).unwrap().len();
        assert_eq!(full_len, HEADER_LEN + 5 * frame(0));
        let last_start = full_len - frame(4);
        for k in 0..frame(4) {
            let dir = TempDir::new("torn");
            copy_dir(pristine.path(), dir.path());
            let path = dir.path().join(seg.file_name().unwrap());
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(last_start + k).unwrap();
            drop(f);

            let s = settings(dir.path());
            let (spool, recovery, registry) = open(s.clone()).await;
            assert_eq!(recovery.records, 4, "cut at +{k}");
            assert_eq!(recovery.truncated_bytes, k, "cut at +{k}");
            assert_eq!(recovery.dropped_records, u64::from(k > 0), "cut at +{k}");
            assert!(
                recovery.damaged.is_empty(),
                "a torn tail is not damage: {:?}",
                recovery.damaged
            );
            assert_eq!(
                super::super::tests::counter(&registry, "kwex_spool_truncated_bytes_total", &[]),
                k
            );
            let out = take(&spool, 4).await;
            assert_eq!(
                out.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
                records(0..4)
            );
            // The log continues cleanly after the cut.
            spool.append(records(100..101)).await.unwrap();
            drop(spool);
            let (spool, again, _) = open(s).await;
            assert_eq!(again.truncated_bytes, 0, "cut at +{k}: the repair held");
            assert_eq!(again.records, 5);
            let out = take(&spool, 5).await;
            assert_eq!(out[4], (4, record(100)), "cut at +{k}");
        }
    }

    #[tokio::test]
    async fn a_flipped_byte_in_the_last_segment_is_caught_by_the_crc_and_cut() {
        let dir = TempDir::new("flip-last");
        {
            let (spool, _, _) = open(settings(dir.path())).await;
            spool.append(records(0..5)).await.unwrap();
        }
        let seg = segment_files(dir.path()).pop().unwrap();
        // A byte inside the body of the third record.
        flip_byte(&seg, HEADER_LEN + 2 * frame(0) + frame(0) - 5);
        let (spool, recovery, registry) = open(settings(dir.path())).await;
        assert_eq!(recovery.records, 2);
        assert_eq!(recovery.dropped_records, 3);
        assert_eq!(recovery.truncated_bytes, 3 * frame(0));
        assert_eq!(recovery.damaged.len(), 1);
        assert!(
            recovery.damaged[0].contains("CRC-32C mismatch"),
            "{:?}",
            recovery.damaged
        );
        assert_eq!(
            super::super::tests::counter(
                &registry,
                "kwex_spool_dropped_documents_total",
                &[("reason", "corrupt")]
            ),
            3
        );
        let out = take(&spool, 2).await;
        assert_eq!(
            out.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records(0..2)
        );
    }

    #[tokio::test]
    async fn a_flipped_byte_in_an_older_segment_keeps_what_is_before_it_and_every_later_segment() {
        let dir = TempDir::new("flip-old");
        // Three records per segment.
        let s = Settings {
            segment_bytes: HEADER_LEN + 3 * frame(0),
            ..settings(dir.path())
        };
        {
            let (spool, _, _) = open(s.clone()).await;
            for i in 0..12 {
                spool.append(records(i..i + 1)).await.unwrap();
            }
        }
        let segs = segment_files(dir.path());
        assert_eq!(segs.len(), 4);
        // Second record of the second segment (seq 4).
        flip_byte(&segs[1], HEADER_LEN + frame(0) + 20);
        let (spool, recovery, _) = open(s).await;
        assert_eq!(recovery.dropped_records, 2, "seqs 4 and 5");
        assert_eq!(recovery.truncated_bytes, 0, "an older segment is not cut");
        assert_eq!(recovery.damaged.len(), 1);
        assert!(
            recovery.damaged[0].contains("records 4..6"),
            "{:?}",
            recovery.damaged
        );
        assert_eq!(recovery.records, 10);
        spool.close();
        let mut seqs = Vec::new();
        while let Some(got) = spool.next(100).await {
            seqs.extend(got.into_iter().map(|(s, r)| {
                assert_eq!(r, record(s));
                s
            }));
        }
        assert_eq!(seqs, vec![0, 1, 2, 3, 6, 7, 8, 9, 10, 11]);
    }

    #[tokio::test]
    async fn a_segment_torn_while_being_created_gets_its_header_back() {
        let dir = TempDir::new("torn-header");
        {
            let (spool, _, _) = open(settings(dir.path())).await;
            spool.append(records(0..2)).await.unwrap();
        }
        // A crash right after creating the next segment's file.
        std::fs::write(dir.path().join(segment::file_name(2)), b"KWEX").unwrap();
        let (spool, recovery, _) = open(settings(dir.path())).await;
        assert_eq!(recovery.records, 2);
        assert_eq!(recovery.truncated_bytes, 4);
        assert!(recovery.damaged.is_empty());
        spool.append(records(2..3)).await.unwrap();
        let out = take(&spool, 3).await;
        assert_eq!(
            out.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records(0..3)
        );
    }

    #[tokio::test]
    async fn acknowledgements_lost_with_a_cut_tail_never_match_a_new_record() {
        let dir = TempDir::new("reuse");
        {
            let (spool, _, _) = open(settings(dir.path())).await;
            spool.append(records(0..5)).await.unwrap();
            let out = take(&spool, 5).await;
            spool.ack(&out.iter().map(|(s, _)| *s).collect::<Vec<_>>());
        }
        // Damage cuts the last three records, whose acks are on disk.
        let seg = segment_files(dir.path()).pop().unwrap();
        flip_byte(&seg, HEADER_LEN + 2 * frame(0) + 20);
        let (spool, recovery, _) = open(settings(dir.path())).await;
        assert_eq!(recovery.records, 0);
        spool.append(records(10..11)).await.unwrap();
        let out = take(&spool, 1).await;
        assert_eq!(
            out[0].0, 5,
            "a fresh sequence number, not the acknowledged 2"
        );
        assert_eq!(out[0].1, record(10));
    }
}
