//! The spool: a durable, bounded queue between the filter chain and the bulk
//! sink.
//!
//! **The guarantee.** A document is safe once [`Spool::append`] has returned
//! `Ok`: the disk spool returns only after an fsync covering the document's
//! frame, so it survives `kill -9`, an OOM kill or a power cut from then on.
//! It stays in the spool until the sink acknowledges it ([`Spool::ack`]:
//! delivered, duplicate or dead-lettered); after a restart every document not
//! acknowledged is handed out again by [`Spool::next`], in append order, so
//! delivery is at least once and the document ids (written with `create`)
//! make the repeats harmless. Nothing is lost silently: a torn tail cut at
//! recovery, a damaged record, and a document dropped by the drop-oldest
//! policy are each reported ([`Recovery`], a log line) and counted
//! (`kwex_spool_dropped_documents_total{reason}`,
//! `kwex_spool_truncated_bytes_total`). `--spool=memory` keeps the same API
//! and bounds but holds the documents in memory only: they are lost with the
//! process, as in the stackdriver exporter.
//!
//! **The layout** of a spool directory (`docs/spool.md` has the details):
//!
//! ```text
//! LOCK                          held (flock) by the process using the directory
//! 00000000000000000000.seg      segment: header, then framed records seq 0..
//! 00000000000000004096.seg      the next segment starts at seq 4096
//! acks                          acknowledged ranges in segments still present
//! ```
//!
//! A segment is deleted when all of its records are acknowledged. One writer
//! thread owns the files and fsyncs appends in groups (at most one fsync per
//! `sync_interval`, shared by every append that arrived meanwhile), so the
//! number of fsyncs does not grow with the number of callers.
//!
//! Modules: `segment` (the file format), `recovery` (opening a directory),
//! `ack` (acknowledgements and the ack file), `disk` (the writer thread and
//! the reader), `memory` (the in-memory backend), `crc32c`, `metrics`.

mod ack;
mod crc32c;
mod disk;
mod memory;
mod metrics;
mod recovery;
mod segment;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use metrics::Metrics;

use crate::document::Record;

/// A record's position in the spool: assigned at append, increasing, never
/// reused (so an acknowledgement can never name a newer record).
pub type Seq = u64;

/// How a disk spool is laid out and bounded.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The spool directory (created if missing). One process per directory.
    pub dir: PathBuf,
    /// Upper bound of the segment files' total size; what happens at the bound
    /// is [`Settings::full`].
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size. Space is
    /// freed a whole segment at a time, so it is capped at a quarter of
    /// `max_bytes`.
    pub segment_bytes: u64,
    /// What `append` does when the spool is full.
    pub full: FullPolicy,
    /// At most one fsync per interval: appends arriving meanwhile share the
    /// next one (group commit). An append after a quiet period is synced at
    /// once.
    pub sync_interval: Duration,
}

impl Settings {
    /// Default segment size: big enough that file creation is rare, small
    /// enough to free space steadily.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    /// Default group-commit interval.
    pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(50);

    /// Settings for `dir` bounded to `max_bytes`, with the defaults otherwise
    /// (64 MiB segments, block when full, 50 ms group commit).
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            full: FullPolicy::Block,
            sync_interval: Self::DEFAULT_SYNC_INTERVAL,
        }
    }

    /// The segment size used: `segment_bytes`, at most a quarter of `max_bytes`.
    fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.min(self.max_bytes / 4).max(1)
    }
}

/// What `append` does when the spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FullPolicy {
    /// Wait until acknowledgements free room: the source is held back and
    /// nothing is lost (Kubernetes keeps Events for an hour; a re-list
    /// catches up).
    #[default]
    Block,
    /// Drop the oldest unacknowledged documents to make room (counted in
    /// `kwex_spool_dropped_documents_total{reason="full"}`, logged at most
    /// once a second): recent Events matter more than old ones.
    DropOldest,
}

/// What opening a spool directory found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files kept.
    pub segments: usize,
    /// Unacknowledged records found, which `next` hands out again.
    pub records: u64,
    /// Bytes cut from torn or damaged tails (last segment, ack file).
    pub truncated_bytes: u64,
    /// Records lost to damage: frames in a cut tail, records after a damaged
    /// frame in an older segment.
    pub dropped_records: u64,
    /// One line per damaged file: which file, where, what, what was lost.
    pub damaged: Vec<String>,
}

/// Why a spool operation failed. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory does not exist and cannot be created.
    #[error(
        "cannot create the spool directory {dir}: {source}; mount a writable volume at --spool-dir"
    )]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The directory exists but files cannot be created in it.
    #[error(
        "the spool directory {dir} is not writable: {source}; mount a writable volume at --spool-dir"
    )]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error(
        "the spool directory {dir} is in use by another kwex process; give each replica its own --spool-dir (an emptyDir, or one volume per pod)"
    )]
    Lock {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory cannot be listed.
    #[error("cannot list the spool directory {dir}: {source}; check the volume's permissions")]
    List {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A spool file cannot be read.
    #[error(
        "cannot read the spool file {path}: {source}; check the volume's health, or move the file out of --spool-dir to start without it (its documents are then lost)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A torn tail found at recovery cannot be cut.
    #[error(
        "cannot repair the spool file {path} (cut its torn tail): {source}; mount a writable volume at --spool-dir"
    )]
    Repair {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing a spool file failed (other than a full disk, which waits).
    #[error("cannot write the spool file {path}: {source}; check the volume's health")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An fsync failed: the kernel may have dropped the unsynced data, so the
    /// spool stops accepting documents rather than pretend they are safe.
    #[error(
        "cannot fsync {path}: {source}; what was written since the last sync may be lost, so the spool stopped accepting documents; restart kwex (recovery checks every record)"
    )]
    Sync {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A batch larger than the whole spool can never fit.
    #[error(
        "a batch of {bytes} bytes does not fit in a spool of {max_bytes} bytes; raise --spool-max-bytes"
    )]
    TooLarge {
        /// Bytes of the batch, framed.
        bytes: u64,
        /// The spool's bound.
        max_bytes: u64,
    },
    /// `append` after `close`.
    #[error("the spool is closed (kwex is shutting down); nothing more can be appended")]
    Closed,
    /// An earlier failure stopped the spool.
    #[error("the spool stopped after an earlier failure ({0}); restart kwex")]
    Stopped(String),
    /// The writer thread could not be started.
    #[error("cannot start the spool's writer thread: {0}; the process may be at its thread limit")]
    Spawn(#[source] io::Error),
}

/// A durable (disk) or volatile (memory) bounded queue of records, with
/// acknowledgements. Share it with `Arc`.
pub struct Spool {
    backend: Backend,
}

enum Backend {
    Disk(disk::Disk),
    Memory(Box<memory::Memory>),
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (documents, bytes) = self.depth();
        let kind = match self.backend {
            Backend::Disk(_) => "disk",
            Backend::Memory(_) => "memory",
        };
        f.debug_struct("Spool")
            .field("backend", &kind)
            .field("documents", &documents)
            .field("bytes", &bytes)
            .finish()
    }
}

impl Spool {
    /// Opens (creating if needed) the spool directory, recovers its log and
    /// starts the writer thread. The [`Recovery`] says what was found; log
    /// it, and warn when it reports damage.
    pub async fn open_disk(
        settings: Settings,
        metrics: Metrics,
    ) -> Result<(Spool, Recovery), Error> {
        let (disk, recovery) = disk::Disk::open(settings, metrics).await?;
        Ok((
            Spool {
                backend: Backend::Disk(disk),
            },
            recovery,
        ))
    }

    /// A spool in memory (`--spool=memory`): same API and bounds, nothing
    /// survives the process.
    pub fn memory(max_bytes: u64, full: FullPolicy, metrics: Metrics) -> Spool {
        Spool {
            backend: Backend::Memory(Box::new(memory::Memory::new(max_bytes, full, metrics))),
        }
    }

    /// Appends `records`; returns once they are durable (after the group
    /// commit's fsync for the disk spool, at once for memory).
    ///
    /// When the spool is full, [`FullPolicy::Block`] waits until
    /// acknowledgements free room (dropping the future while it waits is
    /// safe: nothing was appended), and [`FullPolicy::DropOldest`] drops the
    /// oldest unacknowledged records. A full disk is treated as a full spool:
    /// the writer waits and retries, and never leaves a partial frame behind.
    pub async fn append(&self, records: Vec<Record>) -> Result<(), Error> {
        match &self.backend {
            Backend::Disk(d) => d.append(records).await,
            Backend::Memory(m) => m.append(records).await,
        }
    }

    /// The next records not yet handed out, at most `max` (at least one),
    /// in append order. Waits while there are none; `None` once
    /// [`close`](Self::close) was called and everything was handed out.
    /// Cancel-safe: records are handed out only when this returns.
    pub async fn next(&self, max: usize) -> Option<Vec<(Seq, Record)>> {
        match &self.backend {
            Backend::Disk(d) => d.next(max.max(1)).await,
            Backend::Memory(m) => m.next(max.max(1)).await,
        }
    }

    /// The sink is done with these records (delivered, duplicate or
    /// dead-lettered): they are never handed out again, and their space is
    /// freed (a segment once all its records are acknowledged). Does not
    /// wait: the disk spool persists acknowledgements in the background.
    /// Unknown or repeated sequence numbers are ignored.
    pub fn ack(&self, seqs: &[Seq]) {
        match &self.backend {
            Backend::Disk(d) => d.ack(seqs),
            Backend::Memory(m) => m.ack(seqs),
        }
    }

    /// No more appends (they fail with [`Error::Closed`]); `next` hands out
    /// what is left, then returns `None`. Acknowledgements still count.
    pub fn close(&self) {
        match &self.backend {
            Backend::Disk(d) => d.close(),
            Backend::Memory(m) => m.close(),
        }
    }

    /// Unacknowledged records and their bytes (as framed on disk).
    pub fn depth(&self) -> (u64, u64) {
        match &self.backend {
            Backend::Disk(d) => d.depth(),
            Backend::Memory(m) => m.depth(),
        }
    }
}

#[cfg(test)]
impl Spool {
    /// Appends waiting for room now.
    fn room_waiters(&self) -> usize {
        match &self.backend {
            Backend::Disk(d) => d.room_waiters(),
            Backend::Memory(m) => m.room_waiters(),
        }
    }

    fn disk(&self) -> Option<&disk::Disk> {
        match &self.backend {
            Backend::Disk(d) => Some(d),
            Backend::Memory(_) => None,
        }
    }
}

/// Unix time in milliseconds (0 if the clock is before 1970).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Makes a directory's entries (a created, renamed or removed file) durable.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Sync {
            path: dir.to_owned(),
            source,
        })
}

/// Append times of the records in the spool, one mark per second at most, to
/// tell the age of the oldest unacknowledged one without storing a time per
/// record in memory.
#[derive(Debug, Default)]
struct Ages {
    /// `(seq, ms)`: records from `seq` on were appended at `ms` or later, and
    /// before the next mark's `ms`.
    marks: VecDeque<(Seq, u64)>,
}

impl Ages {
    /// Notes that the record `seq` was appended at `ms`.
    fn note(&mut self, seq: Seq, ms: u64) {
        match self.marks.back() {
            Some(&(_, last)) if ms < last.saturating_add(1000) => {}
            _ => self.marks.push_back((seq, ms)),
        }
    }

    /// Whole seconds since the record `oldest` was appended (0 for `None`),
    /// forgetting marks older than it.
    fn age_seconds(&mut self, oldest: Option<Seq>, now_ms: u64) -> i64 {
        let Some(oldest) = oldest else { return 0 };
        while self.marks.len() >= 2 && self.marks[1].0 <= oldest {
            self.marks.pop_front();
        }
        match self.marks.front() {
            Some(&(seq, ms)) if seq <= oldest => {
                i64::try_from(now_ms.saturating_sub(ms) / 1000).unwrap_or(i64::MAX)
            }
            _ => 0,
        }
    }
}

/// Logs drops of the drop-oldest policy at most once a second (the metric
/// counts every one).
#[derive(Debug, Default)]
struct DropLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl DropLog {
    fn dropped(&mut self, n: u64) {
        self.unlogged += n;
        self.flush(false);
    }

    /// Logs the drops not logged yet: at most once a second, or now when
    /// `force` (at shutdown).
    fn flush(&mut self, force: bool) {
        let now = Instant::now();
        if self.unlogged > 0
            && (force
                || self
                    .last
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)))
        {
            tracing::warn!(
                dropped = self.unlogged,
                "the spool is full: dropped the oldest unacknowledged documents; the search cluster is not keeping up (raise --spool-max-bytes, or use --spool-full=block to hold the source back instead)"
            );
            self.last = Some(now);
            self.unlogged = 0;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use prometheus::Registry;

    use super::*;

    /// A directory under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(name: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "kwex-spool-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Record `i`: the same size for every `i` below 10^8.
    pub fn record(i: u64) -> Record {
        Record {
            id: format!("uid-{i:08}:1"),
            index: "kwex-events-2026.11.25".into(),
            body: Bytes::from(format!(r#"{{"n":{i:08},"message":"{}"}}"#, "x".repeat(64))),
        }
    }

    pub fn records(range: std::ops::Range<u64>) -> Vec<Record> {
        range.map(record).collect()
    }

    pub fn metrics() -> (Registry, Metrics) {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry).unwrap();
        (registry, metrics)
    }

    /// Settings for tests: a fast group commit, roomy bounds.
    pub fn settings(dir: &Path) -> Settings {
        Settings {
            sync_interval: Duration::from_millis(1),
            ..Settings::new(dir, 1 << 30)
        }
    }

    /// The fsyncs done so far (the histogram's sample count).
    pub fn fsyncs(registry: &Registry) -> u64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "kwex_spool_fsync_duration_seconds")
            .flat_map(|f| {
                f.get_metric()
                    .iter()
                    .map(|m| m.get_histogram().get_sample_count())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    pub fn counter(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> u64 {
        crate::telemetry::metrics::read(registry, name, labels).unwrap_or(0.0) as u64
    }

    /// Takes exactly `n` records from `spool`, failing after 10 s.
    pub async fn take(spool: &Spool, n: usize) -> Vec<(Seq, Record)> {
        let mut out = Vec::new();
        while out.len() < n {
            let got = tokio::time::timeout(Duration::from_secs(10), spool.next(n - out.len()))
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} records came out", out.len()))
                .expect("the spool closed early");
            out.extend(got);
        }
        out
    }

    /// Waits until `cond` holds, failing after 10 s.
    pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    pub async fn open(s: Settings) -> (Spool, Recovery, Registry) {
        let (registry, m) = metrics();
        let (spool, recovery) = Spool::open_disk(s, m).await.unwrap();
        (spool, recovery, registry)
    }

    #[tokio::test]
    async fn records_round_trip_through_the_disk_spool() {
        let dir = TempDir::new("roundtrip");
        let (spool, recovery, registry) = open(settings(dir.path())).await;
        assert_eq!(recovery.records, 0);
        assert_eq!(recovery.segments, 1);
        spool.append(records(0..10)).await.unwrap();
        let framed: u64 = records(0..10).iter().map(segment::frame_len).sum();
        assert_eq!(spool.depth(), (10, framed));
        let out = take(&spool, 10).await;
        assert_eq!(
            out.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            records(0..10)
        );
        assert_eq!(
            out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        spool.ack(&out.iter().map(|(s, _)| *s).collect::<Vec<_>>());
        assert_eq!(spool.depth(), (0, 0));
        assert_eq!(counter(&registry, "kwex_spool_appends_total", &[]), 10);
        assert_eq!(counter(&registry, "kwex_spool_acks_total", &[]), 10);
        assert_eq!(counter(&registry, "kwex_spool_depth_documents", &[]), 0);
        assert_eq!(counter(&registry, "kwex_spool_recoveries_total", &[]), 1);
    }

    #[tokio::test]
    async fn a_restart_hands_out_exactly_the_unacked_records_in_order() {
        let dir = TempDir::new("restart");
        let s = Settings {
            segment_bytes: 1000,
            ..settings(dir.path())
        };
        {
            let (spool, _, _) = open(s.clone()).await;
            for chunk in 0..10 {
                spool
                    .append(records(chunk * 10..chunk * 10 + 10))
                    .await
                    .unwrap();
            }
            let out = take(&spool, 100).await;
            // The sink finished the first 30 and every even one after.
            let acked: Vec<Seq> = out
                .iter()
                .map(|(s, _)| *s)
                .filter(|s| *s < 30 || s % 2 == 0)
                .collect();
            spool.ack(&acked);
            spool.close();
        }
        let (spool, recovery, _) = open(s.clone()).await;
        let expected: Vec<u64> = (30..100).filter(|i| i % 2 == 1).collect();
        assert_eq!(recovery.records, expected.len() as u64);
        assert_eq!(recovery.truncated_bytes, 0);
        assert!(recovery.damaged.is_empty(), "{:?}", recovery.damaged);
        spool.close();
        let mut out = Vec::new();
        while let Some(got) = spool.next(7).await {
            out.extend(got);
        }
        assert_eq!(
            out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            expected,
            "exactly the unacknowledged records, in order"
        );
        assert_eq!(
            out.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            expected.iter().map(|&i| record(i)).collect::<Vec<_>>()
        );

        // New records continue the sequence after a restart.
        drop(spool);
        let (spool, _, _) = open(s).await;
        spool.append(records(100..101)).await.unwrap();
        let out = take(&spool, expected.len() + 1).await;
        assert_eq!(out.last().map(|(s, _)| *s), Some(100));
    }

    #[tokio::test]
    async fn fully_acknowledged_segments_are_deleted() {
        let dir = TempDir::new("delete");
        let s = Settings {
            segment_bytes: 1000,
            ..settings(dir.path())
        };
        let (spool, _, _) = open(s.clone()).await;
        for chunk in 0..10 {
            spool
                .append(records(chunk * 5..chunk * 5 + 5))
                .await
                .unwrap();
        }
        let files = segment_files(dir.path()).len();
        assert!(files >= 5, "{files} segments");
        let out = take(&spool, 50).await;
        // Acknowledge all but the last record: every older segment goes.
        spool.ack(&out[..49].iter().map(|(s, _)| *s).collect::<Vec<_>>());
        wait_until("only the last segment is left", || {
            segment_files(dir.path()).len() == 1
        })
        .await;
        assert_eq!(spool.depth().0, 1);
        drop(spool);
        let (spool, recovery, _) = open(s).await;
        assert_eq!(
            recovery.records, 1,
            "only the unacknowledged record is left"
        );
        let out = take(&spool, 1).await;
        assert_eq!(out[0].0, 49);
    }

    #[tokio::test]
    async fn a_crash_loses_no_record_whose_append_returned() {
        let dir = TempDir::new("crash");
        let s = settings(dir.path());
        let confirmed = Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let (spool, _, _) = open(s.clone()).await;
            let spool = Arc::new(spool);
            let mut tasks = Vec::new();
            for t in 0..8u64 {
                let spool = Arc::clone(&spool);
                let confirmed = Arc::clone(&confirmed);
                tasks.push(tokio::spawn(async move {
                    for b in 0..1000u64 {
                        let first = (t * 1000 + b) * 4;
                        spool.append(records(first..first + 4)).await.unwrap();
                        confirmed.lock().unwrap().extend(first..first + 4);
                    }
                }));
            }
            wait_until("some appends returned", || {
                confirmed.lock().unwrap().len() > 400
            })
            .await;
            // The crash: the tasks vanish mid-append and the spool is never
            // closed.
            for t in &tasks {
                t.abort();
            }
            for t in tasks {
                let _ = t.await;
            }
            drop(spool);
        }
        let confirmed = confirmed.lock().unwrap().clone();
        let (spool, recovery, _) = open(s).await;
        assert!(recovery.records >= confirmed.len() as u64);
        let out = take(&spool, recovery.records as usize).await;
        let found: std::collections::HashSet<String> = out.into_iter().map(|(_, r)| r.id).collect();
        for i in confirmed {
            assert!(
                found.contains(&record(i).id),
                "record {i} was confirmed and is gone"
            );
        }
    }

    #[tokio::test]
    async fn close_drains_then_ends_and_refuses_appends() {
        let dir = TempDir::new("close");
        let (spool, _, _) = open(settings(dir.path())).await;
        spool.append(records(0..3)).await.unwrap();
        spool.close();
        assert!(matches!(
            spool.append(records(3..4)).await,
            Err(Error::Closed)
        ));
        assert_eq!(spool.next(10).await.map(|v| v.len()), Some(3));
        assert!(spool.next(10).await.is_none());
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_the_same_directory() {
        let dir = TempDir::new("lock");
        let (_spool, _, _) = open(settings(dir.path())).await;
        let (_, m) = metrics();
        let err = Spool::open_disk(settings(dir.path()), m).await.unwrap_err();
        assert!(matches!(err, Error::Lock { .. }), "{err}");
        assert!(err.to_string().contains("its own --spool-dir"));
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_spool_is_refused_at_once() {
        let dir = TempDir::new("toolarge");
        let s = Settings {
            max_bytes: 1000,
            ..settings(dir.path())
        };
        let (spool, _, _) = open(s).await;
        let err = spool.append(records(0..20)).await.unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }));
        assert!(err.to_string().contains("raise --spool-max-bytes"));
        let memory = Spool::memory(1000, FullPolicy::Block, metrics().1);
        assert!(matches!(
            memory.append(records(0..20)).await,
            Err(Error::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn a_file_where_the_directory_should_be_is_reported_with_the_flag_to_fix() {
        let dir = TempDir::new("notdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let (_, m) = metrics();
        let err = Spool::open_disk(settings(&file.join("spool")), m)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CreateDir { .. }), "{err}");
        assert!(err.to_string().contains("--spool-dir"));
    }

    #[test]
    fn ages_are_told_to_the_second_from_sparse_marks() {
        let mut ages = Ages::default();
        ages.note(0, 10_000);
        ages.note(1, 10_500);
        ages.note(2, 11_200);
        ages.note(3, 20_000);
        assert_eq!(ages.marks.len(), 3);
        assert_eq!(ages.age_seconds(Some(1), 30_000), 20);
        assert_eq!(ages.age_seconds(Some(2), 30_000), 18);
        assert_eq!(ages.age_seconds(Some(3), 30_000), 10);
        assert_eq!(ages.marks.len(), 1);
        assert_eq!(ages.age_seconds(None, 30_000), 0);
    }

    #[test]
    fn the_segment_size_is_capped_at_a_quarter_of_the_spool() {
        let s = Settings::new("/x", 1 << 20);
        assert_eq!(s.effective_segment_bytes(), 256 << 10);
        let s = Settings::new("/x", 1 << 40);
        assert_eq!(s.effective_segment_bytes(), 64 << 20);
    }
}
