//! The disk backend: one writer thread owns the files, callers read with
//! `pread`.
//!
//! **Writer thread.** Appends are queued to a dedicated OS thread (fsync
//! blocks, and a thread keeps the group commit off the async runtime). It
//! encodes every queued record into one buffer, writes it with one `pwrite`
//! and makes it durable with one `fdatasync`, then resolves every append the
//! sync covered; at most one such commit runs per `sync_interval`, except
//! when the queue passes [`COMMIT_BYTES`]. The same thread deletes fully
//! acknowledged segments, appends acknowledgements to the ack file and
//! rewrites it when it grows.
//!
//! **Failures.** A write that fails is undone (`ftruncate` back to the last
//! synced length), so the log never holds a partial frame in its middle. A
//! full disk (`ENOSPC`, `EDQUOT`) is a full spool: the appends wait and the
//! write is retried every second and whenever a segment is deleted (with
//! drop-oldest, the oldest segment is dropped first). Any other write error
//! fails the appends it concerned. A failed fsync stops the spool: Linux may
//! have dropped the dirty pages, so nothing written since the last good sync
//! can be promised; recovery at the next start checks every record.
//!
//! **Reading.** `next` reads frames with `pread` up to the durable length
//! the writer published, checking each CRC again, on the caller's thread:
//! these are page-cache reads of a few hundred KiB at most, and doing them
//! inline keeps `next` cancel-safe (nothing is handed out across an await).
//!
//! **Accounting.** The bound is on the segment files' total size: space is
//! freed a segment at a time, when all its records are acknowledged (or the
//! drop-oldest policy drops the segment whole, counting its unacknowledged
//! records as dropped).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::ack::{self, AckLog, RangeSet};
use super::recovery::{self, Recovered, SegMeta};
use super::segment::{self, HEADER_LEN, Parsed, SEGMENT_MAGIC};
use super::{Ages, DropLog, Error, FullPolicy, Metrics, Recovery, Seq, Settings, now_ms, sync_dir};
use crate::document::Record;

/// A commit starts at once, whatever the interval, when this many bytes are
/// queued: it bounds the writer's buffer.
pub const COMMIT_BYTES: u64 = 8 << 20;
/// How long the writer waits before retrying after a full disk.
const STALL: Duration = if cfg!(test) {
    Duration::from_millis(20)
} else {
    Duration::from_secs(1)
};
/// The writer's idle wake-up, to refresh the age gauge.
const TICK: Duration = Duration::from_secs(1);
/// Bytes the reader asks for at a time.
const READ_CHUNK: u64 = 256 << 10;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// The disk spool's handle; dropping it stops the writer thread after a last
/// commit (and waits for it: milliseconds).
pub struct Disk {
    core: Arc<Core>,
    tx: mpsc::Sender<Command>,
    writer: Option<thread::JoinHandle<()>>,
}

/// What the handle, the reader and the writer thread share.
struct Core {
    dir: PathBuf,
    max_bytes: u64,
    full: FullPolicy,
    state: Mutex<State>,
    reader: Mutex<Reader>,
    /// Records became readable, or the spool closed or failed.
    readable: Notify,
    /// Space was freed, or the spool closed or failed.
    room: Notify,
    metrics: Metrics,
    #[cfg(test)]
    faults: Faults,
}

/// Injected failures, for tests of the error paths.
#[cfg(test)]
#[derive(Default)]
pub struct Faults {
    /// The next this-many data writes write half their bytes, then fail with
    /// ENOSPC.
    pub full_writes: std::sync::atomic::AtomicU32,
}

#[derive(Debug)]
struct State {
    segments: VecDeque<SegMeta>,
    /// Acknowledged sequence numbers; the reader skips them (acks recovered
    /// from the ack file), compaction writes them.
    acked: RangeSet,
    /// Acknowledged since the writer last appended to the ack file.
    new_acks: Vec<Seq>,
    /// Handed out and not acknowledged: framed bytes by sequence number.
    in_flight: BTreeMap<Seq, u64>,
    /// Durable records not handed out yet (nor acknowledged, nor lost).
    pending: u64,
    pending_bytes: u64,
    /// Unacknowledged records (pending and in flight), and their bytes.
    depth: u64,
    depth_bytes: u64,
    /// Total size of the segment files.
    used: u64,
    /// Bytes of appends accepted and not written yet.
    reserved: u64,
    /// Appends accepted and not resolved yet.
    appending: usize,
    /// The next sequence number the reader looks at.
    read_seq: Seq,
    ages: Ages,
    closed: bool,
    failed: Option<String>,
    /// Appends waiting for room.
    room_waiters: usize,
    /// The active segment is damaged: start a new one.
    roll_requested: bool,
    /// A wake-up is queued to the writer already.
    woken: bool,
    drop_log: DropLog,
}

impl State {
    /// Index of the segment holding `seq`.
    fn segment_of(&self, seq: Seq) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.first <= seq);
        i.checked_sub(1)
    }

    fn oldest_unacked(&self) -> Option<Seq> {
        let flying = self.in_flight.keys().next().copied();
        let waiting = (self.pending > 0).then_some(self.read_seq);
        match (flying, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn publish_gauges(&mut self, metrics: &Metrics) {
        metrics.set_depth(self.depth, self.depth_bytes);
        metrics.set_stored(self.used);
        let oldest = self.oldest_unacked();
        metrics
            .oldest_age_seconds
            .set(self.ages.age_seconds(oldest, now_ms()));
    }

    /// Forgets the records of segment `i` that are neither acknowledged nor
    /// handed out (`lost`) or all unacknowledged ones (`!only_pending`),
    /// returning how many were forgotten.
    fn forget(&mut self, i: usize, only_pending: bool) -> u64 {
        let (first, next, unacked, unacked_bytes) = {
            let s = &self.segments[i];
            (s.first, s.next, s.unacked, s.unacked_bytes)
        };
        let upper = if i + 1 == self.segments.len() {
            Seq::MAX
        } else {
            next
        };
        let flying: Vec<(Seq, u64)> = self
            .in_flight
            .range(first..upper)
            .map(|(&s, &b)| (s, b))
            .collect();
        let flying_bytes: u64 = flying.iter().map(|&(_, b)| b).sum();
        let waiting = unacked.saturating_sub(flying.len() as u64);
        let waiting_bytes = unacked_bytes.saturating_sub(flying_bytes);
        self.pending = self.pending.saturating_sub(waiting);
        self.pending_bytes = self.pending_bytes.saturating_sub(waiting_bytes);
        let (n, bytes) = if only_pending {
            (waiting, waiting_bytes)
        } else {
            for (s, _) in &flying {
                self.in_flight.remove(s);
            }
            (unacked, unacked_bytes)
        };
        self.depth = self.depth.saturating_sub(n);
        self.depth_bytes = self.depth_bytes.saturating_sub(bytes);
        let s = &mut self.segments[i];
        s.unacked = s.unacked.saturating_sub(n);
        s.unacked_bytes = s.unacked_bytes.saturating_sub(bytes);
        n
    }

    /// Removes the oldest segment because the spool is full, counting as
    /// dropped its records not yet handed to the sink; returns its path's
    /// sequence number.
    ///
    /// Records of the segment already handed out stay in flight: the sink
    /// delivers them and their acknowledgements count as usual (so
    /// delivered + dropped is the input). Their file is gone, though: if
    /// kwex stops before the sink confirms them, they are not sent again.
    fn drop_oldest(&mut self, metrics: &Metrics) -> Option<Seq> {
        if self.segments.len() < 2 {
            return None;
        }
        let dropped = self.forget(0, true);
        let seg = self.segments.pop_front()?;
        self.used = self.used.saturating_sub(seg.len);
        if let Some(front) = self.segments.front() {
            self.acked.insert(0, front.first);
            if self.read_seq < front.first {
                self.read_seq = front.first;
            }
        }
        metrics.drop_documents("full", dropped);
        if dropped > 0 {
            self.drop_log.dropped(dropped);
        }
        self.publish_gauges(metrics);
        Some(seg.first)
    }
}

/// Where the reader is.
#[derive(Debug)]
struct Reader {
    /// The segment being read (its first sequence number).
    seg: Seq,
    /// Offset of the next frame in it.
    offset: u64,
    /// The sequence number that frame must have.
    expected: Seq,
    file: Option<(Seq, File)>,
    buf: Vec<u8>,
}

impl Reader {
    fn move_to(&mut self, seg: Seq) {
        self.seg = seg;
        self.offset = HEADER_LEN;
        self.expected = seg;
    }
}

enum Command {
    Append(Batch),
    /// Acknowledgements or a waiting append: look at the state.
    Wake,
    Shutdown,
}

struct Batch {
    records: Vec<Record>,
    /// Records durable so far.
    done: usize,
    /// Bytes reserved for it (framed records plus a segment header).
    reserved: u64,
    reply: Option<oneshot::Sender<Result<(), Error>>>,
}

impl Batch {
    fn finish(&mut self, result: Result<(), Error>) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(result);
        }
    }
}

impl Disk {
    /// Recovers the directory (on a thread of its own: it reads every
    /// segment) and starts the writer.
    pub async fn open(settings: Settings, metrics: Metrics) -> Result<(Disk, Recovery), Error> {
        let (tx, rx) = oneshot::channel();
        let (s, m) = (settings.clone(), metrics.clone());
        thread::Builder::new()
            .name("kwex-spool-recovery".into())
            .spawn(move || {
                let _ = tx.send(recovery::recover(&s, &m));
            })
            .map_err(Error::Spawn)?;
        let recovered = rx
            .await
            .map_err(|_| Error::Stopped("the spool recovery thread panicked".into()))??;
        Self::start(settings, metrics, recovered)
    }

    fn start(
        settings: Settings,
        metrics: Metrics,
        recovered: Recovered,
    ) -> Result<(Disk, Recovery), Error> {
        let Recovered {
            lock: dir_lock,
            segments,
            acked,
            ages,
            ack_log,
            report,
        } = recovered;
        let active_meta = segments
            .back()
            .cloned()
            .ok_or_else(|| Error::Stopped("recovery left no segment to append to".into()))?;
        let active_path = recovery::segment_path(&settings.dir, active_meta.first);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&active_path)
            .map_err(|source| Error::NotWritable {
                dir: settings.dir.clone(),
                source,
            })?;
        let first = segments.front().map_or(active_meta.first, |s| s.first);
        let depth: u64 = segments.iter().map(|s| s.unacked).sum();
        let depth_bytes: u64 = segments.iter().map(|s| s.unacked_bytes).sum();
        let mut state = State {
            used: segments.iter().map(|s| s.len).sum(),
            segments,
            acked,
            new_acks: Vec::new(),
            in_flight: BTreeMap::new(),
            pending: depth,
            pending_bytes: depth_bytes,
            depth,
            depth_bytes,
            reserved: 0,
            appending: 0,
            read_seq: first,
            ages,
            closed: false,
            failed: None,
            room_waiters: 0,
            roll_requested: false,
            woken: false,
            drop_log: DropLog::default(),
        };
        state.publish_gauges(&metrics);
        let core = Arc::new(Core {
            dir: settings.dir.clone(),
            max_bytes: settings.max_bytes,
            full: settings.full,
            state: Mutex::new(state),
            reader: Mutex::new(Reader {
                seg: first,
                offset: HEADER_LEN,
                expected: first,
                file: None,
                buf: Vec::new(),
            }),
            readable: Notify::new(),
            room: Notify::new(),
            metrics,
            #[cfg(test)]
            faults: Faults::default(),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            core: Arc::clone(&core),
            rx,
            segment_bytes: settings.effective_segment_bytes(),
            sync_interval: settings.sync_interval,
            active: Active {
                first: active_meta.first,
                file,
                path: active_path,
                len: active_meta.len,
                next: active_meta.next,
            },
            queue: VecDeque::new(),
            queued_bytes: 0,
            ack_log,
            last_sync: None,
            stalled_until: None,
            stall_logged: false,
            _lock: dir_lock,
        };
        let handle = thread::Builder::new()
            .name("kwex-spool-writer".into())
            .spawn(move || writer.run())
            .map_err(Error::Spawn)?;
        Ok((
            Disk {
                core,
                tx,
                writer: Some(handle),
            },
            report,
        ))
    }

    /// Test access to the fault injection.
    #[cfg(test)]
    pub fn faults(&self) -> &Faults {
        &self.core.faults
    }

    /// Appends waiting for room now.
    #[cfg(test)]
    pub fn room_waiters(&self) -> usize {
        lock(&self.core.state).room_waiters
    }

    fn wake(&self, st: &mut State) {
        if !st.woken {
            st.woken = true;
            let _ = self.tx.send(Command::Wake);
        }
    }

    pub async fn append(&self, records: Vec<Record>) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let core = &self.core;
        let bytes = records.iter().map(segment::frame_len).sum::<u64>() + HEADER_LEN;
        if bytes > core.max_bytes {
            return Err(Error::TooLarge {
                bytes,
                max_bytes: core.max_bytes,
            });
        }
        let mut waiting: Option<RoomWaiter<'_>> = None;
        loop {
            let notified = core.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = lock(&core.state);
                if let Some(why) = &st.failed {
                    return Err(Error::Stopped(why.clone()));
                }
                if st.closed {
                    return Err(Error::Closed);
                }
                // Drop-oldest makes room by dropping old segments, but what
                // is being appended at once must fit the spool by itself,
                // or the bound would be passed.
                let fits = match core.full {
                    FullPolicy::DropOldest => st.reserved + bytes <= core.max_bytes,
                    FullPolicy::Block => st.used + st.reserved + bytes <= core.max_bytes,
                };
                if fits {
                    st.reserved += bytes;
                    st.appending += 1;
                    break;
                }
                if waiting.is_none() {
                    st.room_waiters += 1;
                    waiting = Some(RoomWaiter(core));
                }
                self.wake(&mut st);
            }
            notified.await;
        }
        drop(waiting);
        let (reply, done) = oneshot::channel();
        let batch = Batch {
            records,
            done: 0,
            reserved: bytes,
            reply: Some(reply),
        };
        if self.tx.send(Command::Append(batch)).is_err() {
            let mut st = lock(&core.state);
            st.reserved = st.reserved.saturating_sub(bytes);
            st.appending = st.appending.saturating_sub(1);
            return Err(Error::Stopped(
                "the spool's writer thread has stopped".into(),
            ));
        }
        done.await.unwrap_or_else(|_| {
            Err(Error::Stopped(
                "the spool's writer thread stopped before the append was durable".into(),
            ))
        })
    }

    pub async fn next(&self, max: usize) -> Option<Vec<(Seq, Record)>> {
        loop {
            let notified = self.core.readable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.read(max);
            if !got.is_empty() {
                return Some(got);
            }
            {
                let st = lock(&self.core.state);
                if (st.closed || st.failed.is_some()) && st.pending == 0 && st.appending == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Reads up to `max` records not handed out yet, and hands them out.
    fn read(&self, max: usize) -> Vec<(Seq, Record)> {
        let core = &self.core;
        let mut reader = lock(&core.reader);
        let reader = &mut *reader;
        let mut out = Vec::new();
        let mut want = READ_CHUNK;
        while out.len() < max {
            // Where to read, under the state lock.
            let end = {
                let mut st = lock(&core.state);
                if st.pending == 0 {
                    break;
                }
                let found = st.segments.binary_search_by_key(&reader.seg, |s| s.first);
                let i = match found {
                    Ok(i) => i,
                    Err(i) => {
                        // Deleted (acknowledged or dropped): go on with the next one.
                        let Some(s) = st.segments.get(i) else { break };
                        reader.move_to(s.first);
                        st.read_seq = st.read_seq.max(s.first);
                        continue;
                    }
                };
                let s = &st.segments[i];
                if reader.offset >= s.readable {
                    match st.segments.get(i + 1) {
                        Some(n) => {
                            let first = n.first;
                            reader.move_to(first);
                            st.read_seq = st.read_seq.max(first);
                            continue;
                        }
                        None => break,
                    }
                }
                s.readable
            };

            // Read and parse, without the lock.
            let len = (end - reader.offset).min(want);
            let mut got: Vec<(Seq, Record, u64)> = Vec::new();
            let mut consumed = 0u64;
            let mut damage: Option<String> = None;
            match self.pread(reader, len) {
                Err(e) => damage = Some(format!("read error: {e}")),
                Ok(()) => {
                    let mut at = 0usize;
                    let mut expected = reader.expected;
                    while got.len() + out.len() < max {
                        match segment::parse(&reader.buf[at..]) {
                            Parsed::Frame { len, record } => {
                                if record.seq != expected {
                                    damage = Some(
                                        segment::Damage::Sequence {
                                            expected,
                                            found: record.seq,
                                        }
                                        .to_string(),
                                    );
                                    break;
                                }
                                got.push((record.seq, record.to_record(), len as u64));
                                expected += 1;
                                at += len;
                            }
                            Parsed::Incomplete { need } => {
                                if at == 0 {
                                    // A frame larger than the chunk, or damage.
                                    match need {
                                        Some(n) if reader.offset + n as u64 <= end => {
                                            want = n as u64;
                                        }
                                        _ => {
                                            damage = Some(
                                                "a frame runs past the synced end of the segment"
                                                    .into(),
                                            );
                                        }
                                    }
                                }
                                break;
                            }
                            Parsed::Damaged(d) => {
                                damage = Some(d.to_string());
                                break;
                            }
                        }
                    }
                    consumed = at as u64;
                }
            }

            // Hand out, under the lock (the segment may have been dropped meanwhile).
            let mut st = lock(&core.state);
            let Ok(i) = st.segments.binary_search_by_key(&reader.seg, |s| s.first) else {
                continue;
            };
            let frames = got.len() as u64;
            for (seq, record, bytes) in got {
                if st.acked.contains(seq) {
                    continue;
                }
                st.in_flight.insert(seq, bytes);
                st.pending = st.pending.saturating_sub(1);
                st.pending_bytes = st.pending_bytes.saturating_sub(bytes);
                out.push((seq, record));
            }
            if consumed > 0 {
                want = READ_CHUNK;
            }
            reader.offset += consumed;
            reader.expected += frames;
            st.read_seq = st.read_seq.max(reader.expected);
            if let Some(why) = damage {
                self.damaged(&mut st, i, reader, &why);
            }
        }
        if !out.is_empty() {
            let mut st = lock(&core.state);
            st.publish_gauges(&core.metrics);
        }
        out
    }

    /// Reads `len` bytes at the reader's offset into its buffer.
    fn pread(&self, reader: &mut Reader, len: u64) -> io::Result<()> {
        let file = match &reader.file {
            Some((seg, f)) if *seg == reader.seg => f,
            _ => {
                let path = recovery::segment_path(&self.core.dir, reader.seg);
                let f = File::open(path)?;
                &reader.file.insert((reader.seg, f)).1
            }
        };
        reader.buf.resize(len as usize, 0);
        file.read_exact_at(&mut reader.buf, reader.offset)
    }

    /// Damage found while reading segment `i`: the rest of it is lost.
    fn damaged(&self, st: &mut State, i: usize, reader: &Reader, why: &str) {
        let lost = st.forget(i, true);
        let is_active = i + 1 == st.segments.len();
        let seg = &mut st.segments[i];
        seg.readable = reader.offset;
        seg.damaged = true;
        tracing::error!(
            file = %recovery::segment_path(&self.core.dir, seg.first).display(),
            offset = reader.offset,
            lost,
            "spool segment damaged after it was written ({why}); the rest of the segment is lost — check the disk"
        );
        self.core.metrics.drop_documents("corrupt", lost);
        if is_active {
            st.roll_requested = true;
            self.wake(st);
        }
    }

    pub fn ack(&self, seqs: &[Seq]) {
        let mut st = lock(&self.core.state);
        let mut n = 0u64;
        let mut emptied = false;
        let had_acks = !st.new_acks.is_empty();
        let waiters = st.room_waiters > 0;
        for &seq in seqs {
            let Some(bytes) = st.in_flight.remove(&seq) else {
                continue;
            };
            n += 1;
            st.new_acks.push(seq);
            st.acked.insert(seq, seq + 1);
            st.depth = st.depth.saturating_sub(1);
            st.depth_bytes = st.depth_bytes.saturating_sub(bytes);
            if let Some(i) = st.segment_of(seq) {
                let last = i + 1 == st.segments.len();
                let s = &mut st.segments[i];
                s.unacked = s.unacked.saturating_sub(1);
                s.unacked_bytes = s.unacked_bytes.saturating_sub(bytes);
                emptied |= s.unacked == 0 && (!last || waiters);
            }
        }
        if n == 0 {
            return;
        }
        self.core.metrics.acks.inc_by(n);
        st.publish_gauges(&self.core.metrics);
        if emptied || !had_acks {
            self.wake(&mut st);
        }
    }

    pub fn close(&self) {
        lock(&self.core.state).closed = true;
        self.core.readable.notify_waiters();
        self.core.room.notify_waiters();
    }

    pub fn depth(&self) -> (u64, u64) {
        let st = lock(&self.core.state);
        (st.depth, st.depth_bytes)
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

/// Counts an append waiting for room while it lives (cancel-safe).
struct RoomWaiter<'a>(&'a Core);

impl Drop for RoomWaiter<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.0.state);
        st.room_waiters = st.room_waiters.saturating_sub(1);
    }
}

/// The segment appends go to.
struct Active {
    first: Seq,
    file: File,
    path: PathBuf,
    /// Synced length.
    len: u64,
    /// One past the last synced record.
    next: Seq,
}

/// Why a commit stopped.
enum Failure {
    /// The disk is full: wait and retry.
    Full(io::Error),
    /// Another write error: fail the queued appends.
    Write(PathBuf, io::Error),
    /// An fsync failed: stop.
    Sync(PathBuf, io::Error),
}

struct Writer {
    core: Arc<Core>,
    rx: mpsc::Receiver<Command>,
    segment_bytes: u64,
    sync_interval: Duration,
    active: Active,
    queue: VecDeque<Batch>,
    queued_bytes: u64,
    ack_log: AckLog,
    /// When the last commit ended.
    last_sync: Option<Instant>,
    stalled_until: Option<Instant>,
    stall_logged: bool,
    _lock: File,
}

impl Writer {
    fn run(mut self) {
        loop {
            let mut shutdown = false;
            match self.rx.recv_timeout(self.timeout()) {
                Ok(c) => shutdown |= self.accept(c),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => shutdown = true,
            }
            while let Ok(c) = self.rx.try_recv() {
                shutdown |= self.accept(c);
            }
            self.maintain();
            if self.due(shutdown) {
                self.commit();
                self.maintain();
            }
            // Drops not logged yet (the log is rate-limited) are logged
            // within a tick, and all of them before the spool closes.
            lock(&self.core.state).drop_log.flush(shutdown);
            if shutdown {
                self.finish();
                return;
            }
        }
    }

    /// Takes a command; true for shutdown.
    fn accept(&mut self, c: Command) -> bool {
        match c {
            Command::Append(mut b) => {
                let failed = lock(&self.core.state).failed.clone();
                if let Some(why) = failed {
                    self.release(&b);
                    b.finish(Err(Error::Stopped(why)));
                } else {
                    self.queued_bytes += b.reserved;
                    self.queue.push_back(b);
                }
                false
            }
            Command::Wake => {
                lock(&self.core.state).woken = false;
                false
            }
            Command::Shutdown => true,
        }
    }

    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.ack_log.unsynced()
    }

    fn due(&self, shutdown: bool) -> bool {
        if !self.has_work() {
            return false;
        }
        if shutdown {
            return true;
        }
        let now = Instant::now();
        if self.stalled_until.is_some_and(|t| now < t) {
            return false;
        }
        self.queued_bytes >= COMMIT_BYTES
            || self.last_sync.is_none_or(|t| now >= t + self.sync_interval)
    }

    fn timeout(&self) -> Duration {
        if !self.has_work() {
            return TICK;
        }
        let now = Instant::now();
        let at = match (self.stalled_until, self.last_sync) {
            (Some(t), _) => t,
            (None, Some(t)) => t + self.sync_interval,
            (None, None) => now,
        };
        at.saturating_duration_since(now).min(TICK)
    }

    /// Writes every queued record and the pending acknowledgements, and
    /// syncs them.
    fn commit(&mut self) {
        if !self.queue.is_empty() {
            if self.core.full == FullPolicy::DropOldest
                && let Err(f) = self.make_room()
            {
                self.failed(f);
                return;
            }
            if let Err(f) = self.write_queue() {
                self.failed(f);
                return;
            }
            if self.stall_logged {
                tracing::info!("the spool writes again: space was freed");
            }
            self.stalled_until = None;
            self.stall_logged = false;
        }
        if self.ack_log.unsynced() {
            let started = Instant::now();
            if let Err(e) = self.ack_log.sync() {
                tracing::warn!(file = %self.ack_log.path().display(), error = %e,
                    "cannot sync the spool's ack file; after a crash some delivered documents may be sent again");
            }
            self.core
                .metrics
                .fsync_duration
                .observe(started.elapsed().as_secs_f64());
        }
        self.last_sync = Some(Instant::now());
    }

    fn write_queue(&mut self) -> Result<(), Failure> {
        let now = now_ms();
        let mut buf: Vec<u8> = Vec::with_capacity(self.queued_bytes.min(COMMIT_BYTES) as usize);
        let mut next = self.active.next;
        let mut cursor = (0usize, self.queue.front().map_or(0, |b| b.done));
        while cursor.0 < self.queue.len() {
            let Some(len) = self.queue[cursor.0]
                .records
                .get(cursor.1)
                .map(segment::frame_len)
            else {
                cursor = (cursor.0 + 1, 0);
                continue;
            };
            let active_used = self.active.len + buf.len() as u64;
            if next > self.active.first && active_used + len > self.segment_bytes {
                // Finished batches leave the queue: the cursor moves with it.
                cursor.0 -= self.flush(&mut buf, next, cursor, now)?;
                self.roll()?;
            }
            let record = &self.queue[cursor.0].records[cursor.1];
            segment::encode_record(&mut buf, next, now, record);
            next += 1;
            cursor.1 += 1;
        }
        self.flush(&mut buf, next, cursor, now).map(|_| ())
    }

    /// Writes `buf` after the synced end of the active segment, syncs it, and
    /// publishes the records up to `next` (the queue up to `cursor`) as
    /// durable. Returns how many batches that completed (and removed from
    /// the front of the queue).
    fn flush(
        &mut self,
        buf: &mut Vec<u8>,
        next: Seq,
        cursor: (usize, usize),
        now: u64,
    ) -> Result<usize, Failure> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.write_at_end(buf) {
            // Undo a partial write, so that the next frame starts where it must.
            buf.clear();
            if let Err(t) = self.active.file.set_len(self.active.len) {
                return Err(Failure::Sync(self.active.path.clone(), t));
            }
            return Err(if is_full(&e) {
                Failure::Full(e)
            } else {
                Failure::Write(self.active.path.clone(), e)
            });
        }
        let started = Instant::now();
        let synced = self.active.file.sync_data();
        self.core
            .metrics
            .fsync_duration
            .observe(started.elapsed().as_secs_f64());
        synced.map_err(|e| Failure::Sync(self.active.path.clone(), e))?;
        let bytes = buf.len() as u64;
        buf.clear();
        Ok(self.publish(bytes, next, cursor, now))
    }

    fn write_at_end(&self, buf: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let f = &self.core.faults.full_writes;
            if f.load(Ordering::SeqCst) > 0 {
                f.fetch_sub(1, Ordering::SeqCst);
                let half = &buf[..buf.len() / 2];
                self.active.file.write_all_at(half, self.active.len)?;
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
        }
        self.active.file.write_all_at(buf, self.active.len)
    }

    /// Makes `bytes` of records up to `next` visible and resolves the appends
    /// they complete; returns how many.
    fn publish(&mut self, bytes: u64, next: Seq, cursor: (usize, usize), now: u64) -> usize {
        let first_new = self.active.next;
        let n = next - first_new;
        self.active.len += bytes;
        self.active.next = next;
        for (i, b) in self.queue.iter_mut().enumerate() {
            match i.cmp(&cursor.0) {
                std::cmp::Ordering::Less => b.done = b.records.len(),
                std::cmp::Ordering::Equal => b.done = cursor.1.min(b.records.len()),
                std::cmp::Ordering::Greater => break,
            }
        }
        let mut finished = Vec::new();
        while self
            .queue
            .front()
            .is_some_and(|b| b.done == b.records.len())
        {
            if let Some(b) = self.queue.pop_front() {
                finished.push(b);
            }
        }
        let released: u64 = finished.iter().map(|b| b.reserved).sum();
        self.queued_bytes = self.queued_bytes.saturating_sub(released);
        {
            let metrics = &self.core.metrics;
            let mut st = lock(&self.core.state);
            st.used += bytes;
            st.reserved = st.reserved.saturating_sub(released);
            st.appending = st.appending.saturating_sub(finished.len());
            let damaged = match st.segments.back_mut() {
                Some(seg) if seg.first == self.active.first => {
                    seg.len = self.active.len;
                    seg.next = next;
                    if seg.damaged {
                        true
                    } else {
                        seg.readable = self.active.len;
                        seg.unacked += n;
                        seg.unacked_bytes += bytes;
                        false
                    }
                }
                _ => true,
            };
            if damaged {
                metrics.drop_documents("corrupt", n);
            } else {
                st.pending += n;
                st.pending_bytes += bytes;
                st.depth += n;
                st.depth_bytes += bytes;
                st.ages.note(first_new, now);
            }
            metrics.appends.inc_by(n);
            st.publish_gauges(metrics);
        }
        self.core.readable.notify_waiters();
        if released > 0 {
            self.core.room.notify_waiters();
        }
        let popped = finished.len();
        for mut b in finished {
            b.finish(Ok(()));
        }
        popped
    }

    /// Closes the active segment and starts the next one at the next
    /// sequence number.
    fn roll(&mut self) -> Result<(), Failure> {
        let first = self.active.next;
        let path = recovery::segment_path(&self.core.dir, first);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| self.classify(&path, e))?;
        if let Err(e) = file.write_all_at(&segment::header(SEGMENT_MAGIC, first), 0) {
            let _ = std::fs::remove_file(&path);
            return Err(self.classify(&path, e));
        }
        let started = Instant::now();
        let synced = file.sync_data();
        self.core
            .metrics
            .fsync_duration
            .observe(started.elapsed().as_secs_f64());
        synced.map_err(|e| Failure::Sync(path.clone(), e))?;
        sync_dir(&self.core.dir).map_err(|e| match e {
            Error::Sync { path, source } => Failure::Sync(path, source),
            other => Failure::Sync(self.core.dir.clone(), io::Error::other(other.to_string())),
        })?;
        {
            let mut st = lock(&self.core.state);
            st.used += HEADER_LEN;
            st.segments.push_back(SegMeta {
                first,
                next: first,
                len: HEADER_LEN,
                readable: HEADER_LEN,
                unacked: 0,
                unacked_bytes: 0,
                damaged: false,
            });
            st.roll_requested = false;
        }
        self.active = Active {
            first,
            file,
            path,
            len: HEADER_LEN,
            next: first,
        };
        // A reader waiting at the end of the old segment moves on.
        self.core.readable.notify_waiters();
        Ok(())
    }

    fn classify(&self, path: &Path, e: io::Error) -> Failure {
        if is_full(&e) {
            Failure::Full(e)
        } else {
            Failure::Write(path.to_owned(), e)
        }
    }

    /// Bytes the segment files grow by when the queue is written: frames,
    /// and the header of every segment started on the way.
    fn growth(&self) -> u64 {
        let mut len = self.active.len;
        let mut has_records = self.active.next > self.active.first;
        let mut total = 0;
        for b in &self.queue {
            for r in b.records.iter().skip(b.done) {
                let f = segment::frame_len(r);
                if has_records && len + f > self.segment_bytes {
                    total += HEADER_LEN;
                    len = HEADER_LEN;
                }
                len += f;
                total += f;
                has_records = true;
            }
        }
        total
    }

    /// Drop-oldest: drops whole segments, oldest first, until the queued
    /// appends fit.
    fn make_room(&mut self) -> Result<(), Failure> {
        loop {
            let growth = self.growth();
            let (over, segments) = {
                let st = lock(&self.core.state);
                (st.used + growth > self.core.max_bytes, st.segments.len())
            };
            if !over {
                return Ok(());
            }
            if segments < 2 {
                if self.active.next == self.active.first {
                    return Ok(());
                }
                self.roll()?;
                continue;
            }
            self.drop_oldest_segment();
        }
    }

    /// Drops the oldest segment (drop-oldest policy); false if there is none
    /// but the active one.
    fn drop_oldest_segment(&mut self) -> bool {
        let dropped = lock(&self.core.state).drop_oldest(&self.core.metrics);
        match dropped {
            Some(first) => {
                self.remove_segment(first);
                self.core.room.notify_waiters();
                true
            }
            None => false,
        }
    }

    fn remove_segment(&self, first: Seq) {
        let path = recovery::segment_path(&self.core.dir, first);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), error = %e,
                "cannot delete a spool segment whose documents are all acknowledged; it will be retried at the next start");
        }
    }

    /// Handles a failed commit.
    fn failed(&mut self, f: Failure) {
        match f {
            Failure::Full(e) => {
                if self.core.full == FullPolicy::DropOldest && self.drop_oldest_segment() {
                    return;
                }
                if !self.stall_logged {
                    tracing::warn!(dir = %self.core.dir.display(), error = %e,
                        "the disk under the spool is full: appends wait, and are retried every second and whenever acknowledgements free a segment; give --spool-dir more space or lower --spool-max-bytes");
                    self.stall_logged = true;
                }
                self.stalled_until = Some(Instant::now() + STALL);
            }
            Failure::Write(path, e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot write the spool; failing the appends waiting for it");
                let kind = e.kind();
                let msg = e.to_string();
                self.fail_queue(|| Error::Write {
                    path: path.clone(),
                    source: io::Error::new(kind, msg.clone()),
                });
            }
            Failure::Sync(path, e) => {
                tracing::error!(file = %path.display(), error = %e, "fsync of the spool failed: the spool stops accepting documents; restart kwex");
                let why = format!("fsync of {} failed: {e}", path.display());
                lock(&self.core.state).failed = Some(why);
                let kind = e.kind();
                let msg = e.to_string();
                self.fail_queue(|| Error::Sync {
                    path: path.clone(),
                    source: io::Error::new(kind, msg.clone()),
                });
                self.core.readable.notify_waiters();
                self.core.room.notify_waiters();
            }
        }
    }

    fn release(&self, b: &Batch) {
        let mut st = lock(&self.core.state);
        st.reserved = st.reserved.saturating_sub(b.reserved);
        st.appending = st.appending.saturating_sub(1);
    }

    fn fail_queue(&mut self, err: impl Fn() -> Error) {
        while let Some(mut b) = self.queue.pop_front() {
            self.release(&b);
            b.finish(Err(err()));
        }
        self.queued_bytes = 0;
        self.core.readable.notify_waiters();
    }

    /// Housekeeping between commits: deletes acknowledged segments, rolls
    /// on request, appends acknowledgements to the ack file, compacts it.
    fn maintain(&mut self) {
        let (deleted, roll) = {
            let mut st = lock(&self.core.state);
            let mut deleted = Vec::new();
            let mut i = 0;
            while i + 1 < st.segments.len() {
                if st.segments[i].unacked == 0 {
                    if let Some(s) = st.segments.remove(i) {
                        st.used = st.used.saturating_sub(s.len);
                        deleted.push(s.first);
                    }
                } else {
                    i += 1;
                }
            }
            if let Some(front) = st.segments.front() {
                let floor = front.first;
                st.acked.insert(0, floor);
            }
            if !deleted.is_empty() {
                let metrics = self.core.metrics.clone();
                st.publish_gauges(&metrics);
            }
            let roll = st.segments.back().is_some_and(|s| {
                s.next > s.first && (st.roll_requested || (st.room_waiters > 0 && s.unacked == 0))
            });
            (deleted, roll)
        };
        for &first in &deleted {
            self.remove_segment(first);
        }
        if !deleted.is_empty() {
            self.stalled_until = None;
            self.core.room.notify_waiters();
        }
        if roll && self.queue.is_empty() {
            match self.roll() {
                Ok(()) => return self.maintain(),
                Err(f) => self.failed(f),
            }
        }

        let (mut acks, snapshot) = {
            let mut st = lock(&self.core.state);
            let acks = std::mem::take(&mut st.new_acks);
            let snapshot = self.ack_log.wants_rewrite().then(|| st.acked.clone());
            st.publish_gauges(&self.core.metrics);
            (acks, snapshot)
        };
        if !acks.is_empty() {
            let ranges = ack::coalesce(&mut acks);
            if let Err(e) = self.ack_log.append(&ranges) {
                tracing::warn!(file = %self.ack_log.path().display(), error = %e,
                    "cannot record acknowledgements in the spool's ack file; after a restart some delivered documents may be sent again");
            }
        }
        if let Some(acked) = snapshot {
            match AckLog::rewrite(&self.core.dir, &acked) {
                Ok(log) => self.ack_log = log,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot compact the spool's ack file; it keeps growing until the next start")
                }
            }
        }
    }

    /// Last commit at shutdown; whatever could not be written is failed.
    fn finish(&mut self) {
        self.maintain();
        if self.has_work() {
            self.commit();
        }
        if !self.queue.is_empty() {
            self.fail_queue(|| {
                Error::Stopped("the spool shut down before it could write these documents".into())
            });
        }
        if let Err(e) = self.ack_log.sync() {
            tracing::warn!(error = %e, "cannot sync the spool's ack file at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::super::tests::{
        TempDir, counter, fsyncs, open, record, records, segment_files, settings, take, wait_until,
    };
    use super::super::{Settings, Spool};
    use super::*;

    fn frame() -> u64 {
        segment::frame_len(&record(0))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_appends_from_eight_tasks_share_far_fewer_fsyncs() {
        let dir = TempDir::new("group");
        let s = Settings {
            sync_interval: Duration::from_millis(2),
            ..settings(dir.path())
        };
        let (spool, _, registry) = open(s).await;
        let before = fsyncs(&registry);
        let spool = Arc::new(spool);
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let spool = Arc::clone(&spool);
            tasks.push(tokio::spawn(async move {
                for i in 0..1250u64 {
                    spool.append(vec![record(t * 1250 + i)]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let syncs = fsyncs(&registry) - before;
        eprintln!("group commit: {syncs} fsyncs for 10,000 appends");
        assert_eq!(counter(&registry, "kwex_spool_appends_total", &[]), 10_000);
        assert_eq!(spool.depth().0, 10_000);
        assert!(
            syncs * 4 <= 10_000,
            "{syncs} fsyncs for 10,000 appends: the group commit does not group"
        );
        let out = take(&spool, 10_000).await;
        let mut ids: Vec<String> = out.into_iter().map(|(_, r)| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_batches_crossing_segment_rolls_in_one_commit_keep_their_order() {
        let dir = TempDir::new("rolls");
        let s = Settings {
            segment_bytes: HEADER_LEN + 5 * frame(),
            // A long interval: the batches pile up and go in few commits.
            sync_interval: Duration::from_millis(200),
            ..settings(dir.path())
        };
        let (spool, _, _) = open(s.clone()).await;
        let spool = Arc::new(spool);
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let spool = Arc::clone(&spool);
            tasks.push(tokio::spawn(async move {
                spool.append(records(t * 3..t * 3 + 3)).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(segment_files(dir.path()).len() >= 10);
        let mut out = take(&spool, 48).await;
        assert_eq!(
            out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (0..48).collect::<Vec<_>>()
        );
        out.sort_by_key(|(_, r)| r.id.clone());
        assert_eq!(
            out.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records(0..48)
        );
        drop(spool);
        let (_, recovery, _) = open(s).await;
        assert_eq!(recovery.records, 48);
        assert!(recovery.damaged.is_empty());
    }

    #[tokio::test]
    async fn block_waits_until_an_ack_frees_a_segment() {
        let dir = TempDir::new("block");
        // Three records per segment, four segments fit.
        let segment_bytes = HEADER_LEN + 3 * frame();
        let s = Settings {
            max_bytes: 4 * segment_bytes,
            segment_bytes,
            full: FullPolicy::Block,
            ..settings(dir.path())
        };
        let (spool, _, _) = open(s).await;
        let spool = Arc::new(spool);
        let mut appended = 0;
        // Single-record appends reserve a frame and a header each: the
        // first 11 fit, the 12th must wait.
        while appended < 11 {
            spool.append(records(appended..appended + 1)).await.unwrap();
            appended += 1;
        }
        let blocked = {
            let spool = Arc::clone(&spool);
            tokio::spawn(async move { spool.append(records(11..12)).await })
        };
        wait_until("the append waits for room", || spool.room_waiters() == 1).await;
        assert!(!blocked.is_finished());
        assert_eq!(spool.depth().0, 11);

        // Acknowledging part of the oldest segment frees nothing.
        let out = take(&spool, 11).await;
        spool.ack(&[out[0].0, out[1].0]);
        tokio::task::yield_now().await;
        assert!(!blocked.is_finished());
        // The whole segment does.
        spool.ack(&[out[2].0]);
        tokio::time::timeout(Duration::from_secs(10), blocked)
            .await
            .expect("the append went through once the segment was freed")
            .unwrap()
            .unwrap();
        assert_eq!(spool.room_waiters(), 0);
        assert_eq!(take(&spool, 1).await[0].1, record(11));
    }

    #[tokio::test]
    async fn a_cancelled_blocked_append_leaves_nothing_behind() {
        let dir = TempDir::new("block-cancel");
        let segment_bytes = HEADER_LEN + 3 * frame();
        let s = Settings {
            max_bytes: 4 * segment_bytes,
            segment_bytes,
            ..settings(dir.path())
        };
        let (spool, _, _) = open(s).await;
        let spool = Arc::new(spool);
        for i in 0..11 {
            spool.append(records(i..i + 1)).await.unwrap();
        }
        let blocked = {
            let spool = Arc::clone(&spool);
            tokio::spawn(async move { spool.append(records(11..12)).await })
        };
        wait_until("the append waits", || spool.room_waiters() == 1).await;
        blocked.abort();
        let _ = blocked.await;
        assert_eq!(spool.room_waiters(), 0);
        assert_eq!(spool.depth().0, 11);
        let out = take(&spool, 11).await;
        spool.ack(&out.iter().map(|(s, _)| *s).collect::<Vec<_>>());
        spool.append(records(20..21)).await.unwrap();
        assert_eq!(take(&spool, 1).await[0].1, record(20));
    }

    #[tokio::test]
    async fn drop_oldest_drops_and_counts_exactly_the_oldest_segment() {
        let dir = TempDir::new("dropoldest");
        let segment_bytes = HEADER_LEN + 3 * frame();
        let s = Settings {
            max_bytes: 4 * segment_bytes,
            segment_bytes,
            full: FullPolicy::DropOldest,
            ..settings(dir.path())
        };
        let (spool, _, registry) = open(s).await;
        for i in 0..12 {
            spool.append(records(i..i + 1)).await.unwrap();
        }
        assert_eq!(segment_files(dir.path()).len(), 4);
        assert_eq!(
            counter(
                &registry,
                "kwex_spool_dropped_documents_total",
                &[("reason", "full")]
            ),
            0
        );
        // The 13th does not fit: the oldest segment (records 0, 1, 2) goes.
        spool.append(records(12..13)).await.unwrap();
        assert_eq!(
            counter(
                &registry,
                "kwex_spool_dropped_documents_total",
                &[("reason", "full")]
            ),
            3
        );
        assert_eq!(spool.depth().0, 10);
        let out = take(&spool, 10).await;
        assert_eq!(
            out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (3..13).collect::<Vec<_>>()
        );
        assert!(
            !dir.path().join(segment::file_name(0)).exists(),
            "the dropped segment's file is gone"
        );
    }

    #[tokio::test]
    async fn a_full_disk_makes_appends_wait_and_retry_without_a_partial_frame() {
        let dir = TempDir::new("enospc");
        let s = settings(dir.path());
        {
            let (spool, _, registry) = open(s.clone()).await;
            spool.append(records(0..2)).await.unwrap();
            let disk = spool.disk().unwrap();
            // The next three writes write half their bytes, then hit ENOSPC.
            disk.faults().full_writes.store(3, Ordering::SeqCst);
            spool.append(records(2..5)).await.unwrap();
            assert_eq!(disk.faults().full_writes.load(Ordering::SeqCst), 0);
            assert_eq!(counter(&registry, "kwex_spool_appends_total", &[]), 5);
            let out = take(&spool, 5).await;
            assert_eq!(
                out.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
                records(0..5)
            );
        }
        let seg = segment_files(dir.path()).pop().unwrap();
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            HEADER_LEN + 5 * frame(),
            "the half-written bytes were taken back"
        );
        let (_, recovery, _) = open(s).await;
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(recovery.records, 5);
    }

    #[tokio::test]
    async fn the_oldest_age_and_depth_gauges_follow_appends_and_acks() {
        let dir = TempDir::new("gauges");
        let (spool, _, registry) = open(settings(dir.path())).await;
        spool.append(records(0..3)).await.unwrap();
        let framed = 3 * frame();
        assert_eq!(counter(&registry, "kwex_spool_depth_documents", &[]), 3);
        assert_eq!(counter(&registry, "kwex_spool_depth_bytes", &[]), framed);
        assert_eq!(
            counter(
                &registry,
                "kwex_spool_oldest_unacknowledged_age_seconds",
                &[]
            ),
            0
        );
        let out = take(&spool, 3).await;
        spool.ack(&out.iter().map(|(s, _)| *s).collect::<Vec<_>>());
        assert_eq!(counter(&registry, "kwex_spool_depth_documents", &[]), 0);
        assert_eq!(counter(&registry, "kwex_spool_depth_bytes", &[]), 0);
    }

    #[tokio::test]
    async fn records_handed_out_but_not_acknowledged_come_back_after_a_restart() {
        let dir = TempDir::new("inflight");
        let s = settings(dir.path());
        {
            let (spool, _, _) = open(s.clone()).await;
            spool.append(records(0..4)).await.unwrap();
            let out = take(&spool, 4).await;
            spool.ack(&[out[1].0]);
        }
        let (spool, recovery, _) = open(s).await;
        assert_eq!(recovery.records, 3);
        let out = take(&spool, 3).await;
        assert_eq!(
            out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![0, 2, 3]
        );
    }

    #[tokio::test]
    async fn unknown_and_repeated_acks_are_ignored() {
        let dir = TempDir::new("badacks");
        let (spool, _, registry) = open(settings(dir.path())).await;
        spool.append(records(0..2)).await.unwrap();
        spool.ack(&[0, 1, 99]);
        assert_eq!(
            spool.depth().0,
            2,
            "not handed out yet: nothing to acknowledge"
        );
        let out = take(&spool, 2).await;
        spool.ack(&[out[0].0, out[0].0, 99]);
        assert_eq!(spool.depth().0, 1);
        assert_eq!(counter(&registry, "kwex_spool_acks_total", &[]), 1);
    }

    #[allow(dead_code)]
    fn assert_send_sync() {
        fn is<T: Send + Sync>() {}
        is::<Spool>();
    }
}
