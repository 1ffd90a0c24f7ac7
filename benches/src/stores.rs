//! The spool's workload on three stores, for the storage decision
//! (`docs/decisions/2026-11-25-spool-storage.md`): kwex's own segment log
//! (`kwex::spool`), redb (a copy-on-write B-tree) and fjall (an LSM tree).
//!
//! The workload is a durable FIFO of ~1 KB documents: append a batch and
//! return only once it is on disk (one fsync per batch: the group commit),
//! hand the records out in append order, acknowledge them (delete from the
//! head). An acknowledgement is not synced on its own: like kwex's ack file,
//! it becomes durable with the next commit.
//!
//! The redb and fjall adapters are the least integration code that gives
//! that workload; what kwex's spool also does and they leave out (concurrent
//! appenders sharing one fsync, a size bound with block/drop-oldest, a full
//! disk, metrics, a report of what recovery lost) is listed in the decision
//! record.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use kwex::document::Record;
use redb::{ReadableDatabase, ReadableTable};

/// Errors of the adapters (boxed: this is a benchmark).
pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Documents per batch (one durable commit each), as kwex's pipeline appends.
pub const BATCH: usize = 256;

/// Document `i`: ~1 KB, like a normalized Event (the same as `benches/spool.rs`).
pub fn record(i: u64) -> Record {
    Record {
        id: format!("6f1c2d9a-8e4b-4f3a-9c1d-{i:012}:{i}"),
        index: "kwex-events-2026.11.25".into(),
        body: Bytes::from(format!(
            r#"{{"@timestamp":"2026-11-25T10:00:00Z","reason":"BackOff","message":"{}","n":{i:012}}}"#,
            "Back-off restarting failed container app in pod web-7d9f8 ".repeat(16)
        )),
    }
}

/// Documents `start..start + n`.
pub fn records(start: u64, n: usize) -> Vec<Record> {
    (start..start + n as u64).map(record).collect()
}

/// Bytes of a document as counted in the figures: id + index + body.
pub fn document_bytes(r: &Record) -> usize {
    r.id.len() + r.index.len() + r.body.len()
}

/// The stores compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `kwex::spool` on disk, `sync_interval` 0 (one fsync per append).
    Kwex,
    /// redb, one `Durability::Immediate` write transaction per append.
    Redb,
    /// redb with quick-repair (2-phase commit, allocator state saved at each
    /// commit: slower commits, fast recovery after a crash).
    RedbQuickRepair,
    /// fjall, one write batch per append persisted with `SyncData`.
    Fjall,
}

impl Kind {
    /// All of them, in table order.
    pub const ALL: [Kind; 4] = [Kind::Kwex, Kind::Redb, Kind::RedbQuickRepair, Kind::Fjall];

    /// Name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kwex => "kwex",
            Kind::Redb => "redb",
            Kind::RedbQuickRepair => "redb-quick-repair",
            Kind::Fjall => "fjall",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Opens (creating or recovering) the store in `dir`.
    pub fn open(self, dir: &Path) -> Result<Box<dyn Queue>> {
        Ok(match self {
            Kind::Kwex => Box::new(KwexQueue::open(dir)?),
            Kind::Redb => Box::new(RedbQueue::open(dir, false)?),
            Kind::RedbQuickRepair => Box::new(RedbQueue::open(dir, true)?),
            Kind::Fjall => Box::new(FjallQueue::open(dir)?),
        })
    }
}

/// A durable FIFO of records, used as kwex's pipeline uses its spool.
pub trait Queue {
    /// Appends `records`; returns once they are on disk.
    fn append(&mut self, records: Vec<Record>) -> Result<()>;
    /// Up to `max` records not handed out yet, in append order (empty when
    /// there are none).
    fn next(&mut self, max: usize) -> Result<Vec<(u64, Record)>>;
    /// The records `seqs` are done with: delete them. Durable with the next commit.
    fn ack(&mut self, seqs: &[u64]) -> Result<()>;
    /// Shuts down cleanly.
    fn close(self: Box<Self>) -> Result<()>;
}

// ------------------------------------------------------------------ kwex

/// `kwex::spool` on disk, driven from synchronous code.
pub struct KwexQueue {
    rt: tokio::runtime::Runtime,
    spool: kwex::spool::Spool,
}

impl KwexQueue {
    /// Opens `dir` with one fsync per append and a 64 GiB bound (never full here).
    pub fn open(dir: &Path) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let settings = kwex::spool::Settings {
            sync_interval: Duration::ZERO,
            ..kwex::spool::Settings::new(dir, 64 << 30)
        };
        let metrics = kwex::spool::Metrics::unregistered()?;
        let (spool, _recovery) = rt.block_on(kwex::spool::Spool::open_disk(settings, metrics))?;
        Ok(Self { rt, spool })
    }
}

impl Queue for KwexQueue {
    fn append(&mut self, records: Vec<Record>) -> Result<()> {
        Ok(self.rt.block_on(self.spool.append(records))?)
    }

    fn next(&mut self, max: usize) -> Result<Vec<(u64, Record)>> {
        if self.spool.depth().0 == 0 {
            return Ok(Vec::new());
        }
        // `next` waits for records; everything may be handed out already.
        let next = self.spool.next(max);
        Ok(self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(1), next).await })
            .ok()
            .flatten()
            .unwrap_or_default())
    }

    fn ack(&mut self, seqs: &[u64]) -> Result<()> {
        self.spool.ack(seqs);
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.spool.close();
        Ok(())
    }
}

// ------------------------------------------------------------------ value encoding (redb, fjall)

/// `id_len u32 | id | index_len u32 | index | body`.
fn encode(r: &Record) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + document_bytes(r));
    for part in [r.id.as_bytes(), r.index.as_bytes()] {
        v.extend_from_slice(&(part.len() as u32).to_le_bytes());
        v.extend_from_slice(part);
    }
    v.extend_from_slice(&r.body);
    v
}

fn decode(mut v: &[u8]) -> Result<Record> {
    let mut text = || -> Result<String> {
        let (len, rest) = v.split_first_chunk::<4>().ok_or("short value")?;
        let len = u32::from_le_bytes(*len) as usize;
        let part = rest.get(..len).ok_or("short value")?;
        v = &rest[len..];
        Ok(String::from_utf8(part.to_vec())?)
    };
    let id = text()?;
    let index = text()?;
    Ok(Record {
        id,
        index,
        body: Bytes::copy_from_slice(v),
    })
}

// ------------------------------------------------------------------ redb

const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("spool");

/// redb: records keyed by sequence number in one table.
pub struct RedbQueue {
    db: redb::Database,
    quick_repair: bool,
    next_seq: u64,
    read_seq: u64,
}

impl RedbQueue {
    /// Opens (or creates) `dir/spool.redb`; recovers the head and tail.
    pub fn open(dir: &Path, quick_repair: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let db = redb::Database::create(dir.join("spool.redb"))?;
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(quick_repair);
        let (first, last) = {
            let table = txn.open_table(TABLE)?;
            let first = table.first()?.map(|(k, _)| k.value());
            let last = table.last()?.map(|(k, _)| k.value());
            (first, last)
        };
        txn.commit()?;
        Ok(Self {
            db,
            quick_repair,
            next_seq: last.map_or(0, |s| s + 1),
            read_seq: first.unwrap_or(0),
        })
    }

    fn write(
        &self,
        durable: bool,
        f: impl FnOnce(&mut redb::Table<u64, &[u8]>) -> Result<()>,
    ) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_quick_repair(self.quick_repair);
        if !durable {
            txn.set_durability(redb::Durability::None)?;
        }
        f(&mut txn.open_table(TABLE)?)?;
        txn.commit()?;
        Ok(())
    }
}

impl Queue for RedbQueue {
    fn append(&mut self, records: Vec<Record>) -> Result<()> {
        let first = self.next_seq;
        self.write(true, |table| {
            for (i, r) in records.iter().enumerate() {
                table.insert(first + i as u64, encode(r).as_slice())?;
            }
            Ok(())
        })?;
        self.next_seq += records.len() as u64;
        Ok(())
    }

    fn next(&mut self, max: usize) -> Result<Vec<(u64, Record)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut out = Vec::with_capacity(max);
        for item in table.range(self.read_seq..)?.take(max) {
            let (k, v) = item?;
            out.push((k.value(), decode(v.value())?));
        }
        if let Some((seq, _)) = out.last() {
            self.read_seq = seq + 1;
        }
        Ok(out)
    }

    fn ack(&mut self, seqs: &[u64]) -> Result<()> {
        self.write(false, |table| {
            for &s in seqs {
                table.remove(s)?;
            }
            Ok(())
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Make the last non-durable commits (acks) durable, then close.
        self.write(true, |_| Ok(()))?;
        Ok(self.db.close()?)
    }
}

// ------------------------------------------------------------------ fjall

/// fjall: records keyed by big-endian sequence number in one keyspace.
pub struct FjallQueue {
    db: fjall::Database,
    ks: fjall::Keyspace,
    next_seq: u64,
    read_seq: u64,
}

impl FjallQueue {
    /// Opens (or creates) the database in `dir`; recovers the head and tail.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = fjall::Database::builder(dir).open()?;
        let ks = db.keyspace("spool", fjall::KeyspaceCreateOptions::default)?;
        let seq = |g: Option<fjall::Guard>| -> Result<Option<u64>> {
            let Some(g) = g else { return Ok(None) };
            let key = g.key()?;
            Ok(Some(u64::from_be_bytes(key.as_ref().try_into()?)))
        };
        let first = seq(ks.first_key_value())?;
        let last = seq(ks.last_key_value())?;
        Ok(Self {
            db,
            ks,
            next_seq: last.map_or(0, |s| s + 1),
            read_seq: first.unwrap_or(0),
        })
    }
}

impl Queue for FjallQueue {
    fn append(&mut self, records: Vec<Record>) -> Result<()> {
        let mut batch = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        for (i, r) in records.iter().enumerate() {
            batch.insert(
                &self.ks,
                (self.next_seq + i as u64).to_be_bytes(),
                encode(r),
            );
        }
        batch.commit()?;
        self.next_seq += records.len() as u64;
        Ok(())
    }

    fn next(&mut self, max: usize) -> Result<Vec<(u64, Record)>> {
        let mut out = Vec::with_capacity(max);
        for g in self.ks.range(self.read_seq.to_be_bytes()..).take(max) {
            let (k, v) = g.into_inner()?;
            out.push((u64::from_be_bytes(k.as_ref().try_into()?), decode(&v)?));
        }
        if let Some((seq, _)) = out.last() {
            self.read_seq = seq + 1;
        }
        Ok(out)
    }

    fn ack(&mut self, seqs: &[u64]) -> Result<()> {
        // Written to the journal (OS buffers), synced with the next append.
        let mut batch = self.db.batch();
        for &s in seqs {
            batch.remove(&self.ks, s.to_be_bytes());
        }
        Ok(batch.commit()?)
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.db.persist(fjall::PersistMode::SyncData)?)
    }
}

// ------------------------------------------------------------------ helpers

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `$TMPDIR/kwex-stores-<name>-<pid>`, emptied.
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("kwex-stores-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Total size of the files under `dir`.
pub fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One round: append `batches` batches of [`BATCH`] documents (one durable
/// commit each), hand them all out and acknowledge them. `counter` numbers
/// the documents.
pub fn round(q: &mut dyn Queue, batch: usize, counter: &mut u64) -> Result<()> {
    q.append(records(*counter, batch))?;
    *counter += batch as u64;
    let mut left = batch;
    while left > 0 {
        let got = q.next(left)?;
        if got.is_empty() {
            return Err("records missing".into());
        }
        left -= got.len();
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        q.ack(&seqs)?;
    }
    Ok(())
}
