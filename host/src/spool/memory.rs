//! The memory backend (`--spool=memory`): the same API and the same byte
//! bound as the disk spool, with nothing on disk.
//!
//! For operators who prefer the stackdriver exporter's behaviour (no volume,
//! documents lost on restart) but still want the bound, the full policy, the
//! acknowledgements and the metrics to work the same way. Bytes are counted
//! as the disk spool frames them, so the same `--spool-max-bytes` holds about
//! the same number of documents; space is freed per record, not per segment.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::segment;
use super::{Ages, DropLog, Error, FullPolicy, Metrics, Seq, now_ms};
use crate::document::Record;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The memory spool.
pub struct Memory {
    max_bytes: u64,
    full: FullPolicy,
    state: Mutex<State>,
    /// Records were appended, or the spool closed.
    readable: Notify,
    /// Records were acknowledged or dropped, or the spool closed.
    room: Notify,
    /// Appends waiting for room now.
    waiters: AtomicUsize,
    metrics: Metrics,
}

/// Counts an append waiting for room while it lives (cancel-safe).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct State {
    next_seq: Seq,
    /// Appended, not handed out: sequence number, record, framed bytes.
    pending: VecDeque<(Seq, Record, u64)>,
    /// Handed out, not acknowledged: framed bytes by sequence number.
    in_flight: BTreeMap<Seq, u64>,
    /// Framed bytes of every unacknowledged record.
    used: u64,
    closed: bool,
    ages: Ages,
    drop_log: DropLog,
}

impl State {
    fn depth(&self) -> u64 {
        (self.pending.len() + self.in_flight.len()) as u64
    }

    fn oldest(&self) -> Option<Seq> {
        let waiting = self.pending.front().map(|p| p.0);
        let flying = self.in_flight.keys().next().copied();
        match (waiting, flying) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn publish(&mut self, metrics: &Metrics) {
        metrics.set_depth(self.depth(), self.used);
        metrics.set_stored(self.used);
        let oldest = self.oldest();
        metrics
            .oldest_age_seconds
            .set(self.ages.age_seconds(oldest, now_ms()));
    }

    /// Drops the oldest record not yet handed to the sink. Records with the
    /// sink are not dropped (it delivers them; counting them as dropped would
    /// count them twice): with none waiting, an append waits for
    /// acknowledgements instead.
    fn drop_oldest(&mut self) -> bool {
        let bytes = self.pending.pop_front().map(|p| p.2);
        match bytes {
            Some(b) => {
                self.used = self.used.saturating_sub(b);
                true
            }
            None => false,
        }
    }
}

impl Memory {
    /// An empty memory spool bounded to `max_bytes`.
    pub fn new(max_bytes: u64, full: FullPolicy, metrics: Metrics) -> Self {
        metrics.set_depth(0, 0);
        Self {
            max_bytes,
            full,
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            room: Notify::new(),
            waiters: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Appends waiting for room now.
    #[cfg(test)]
    pub fn room_waiters(&self) -> usize {
        self.waiters.load(Ordering::SeqCst)
    }

    pub async fn append(&self, records: Vec<Record>) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let sizes: Vec<u64> = records.iter().map(segment::frame_len).collect();
        let bytes: u64 = sizes.iter().sum();
        if bytes > self.max_bytes {
            return Err(Error::TooLarge {
                bytes,
                max_bytes: self.max_bytes,
            });
        }
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = lock(&self.state);
                if st.closed {
                    return Err(Error::Closed);
                }
                if self.full == FullPolicy::DropOldest {
                    let mut dropped = 0;
                    while st.used + bytes > self.max_bytes && st.drop_oldest() {
                        dropped += 1;
                    }
                    if dropped > 0 {
                        self.metrics.drop_documents("full", dropped);
                        st.drop_log.dropped(dropped);
                    }
                }
                if st.used + bytes <= self.max_bytes {
                    let now = now_ms();
                    let n = records.len() as u64;
                    let first = st.next_seq;
                    st.ages.note(first, now);
                    for (record, size) in records.into_iter().zip(sizes) {
                        let seq = st.next_seq;
                        st.next_seq += 1;
                        st.pending.push_back((seq, record, size));
                    }
                    st.used += bytes;
                    self.metrics.appends.inc_by(n);
                    st.publish(&self.metrics);
                    drop(st);
                    self.readable.notify_waiters();
                    return Ok(());
                }
            }
            if waiting.is_none() {
                self.waiters.fetch_add(1, Ordering::SeqCst);
                waiting = Some(Waiting(&self.waiters));
            }
            notified.await;
        }
    }

    pub async fn next(&self, max: usize) -> Option<Vec<(Seq, Record)>> {
        loop {
            let notified = self.readable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = lock(&self.state);
                if !st.pending.is_empty() {
                    let n = max.min(st.pending.len());
                    let mut out = Vec::with_capacity(n);
                    for _ in 0..n {
                        if let Some((seq, record, size)) = st.pending.pop_front() {
                            st.in_flight.insert(seq, size);
                            out.push((seq, record));
                        }
                    }
                    return Some(out);
                }
                if st.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    pub fn ack(&self, seqs: &[Seq]) {
        let mut st = lock(&self.state);
        let mut n = 0;
        for seq in seqs {
            if let Some(size) = st.in_flight.remove(seq) {
                st.used = st.used.saturating_sub(size);
                n += 1;
            }
        }
        if n > 0 {
            self.metrics.acks.inc_by(n);
            st.publish(&self.metrics);
            drop(st);
            self.room.notify_waiters();
        }
    }

    pub fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        st.drop_log.flush(true);
        drop(st);
        self.readable.notify_waiters();
        self.room.notify_waiters();
    }

    pub fn depth(&self) -> (u64, u64) {
        let st = lock(&self.state);
        (st.depth(), st.used)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use super::super::tests::{counter, metrics, record, records, take, wait_until};
    use super::super::{FullPolicy, Spool};
    use super::segment;

    fn frame() -> u64 {
        segment::frame_len(&record(0))
    }

    #[tokio::test]
    async fn records_round_trip_through_the_memory_spool() {
        let (registry, m) = metrics();
        let spool = Spool::memory(1 << 20, FullPolicy::Block, m);
        spool.append(records(0..10)).await.unwrap();
        assert_eq!(spool.depth(), (10, 10 * frame()));
        let out = take(&spool, 10).await;
        assert_eq!(
            out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(
            out.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records(0..10)
        );
        spool.ack(&(0..10).collect::<Vec<_>>());
        assert_eq!(spool.depth(), (0, 0));
        assert_eq!(counter(&registry, "kwex_spool_appends_total", &[]), 10);
        assert_eq!(counter(&registry, "kwex_spool_acks_total", &[]), 10);
    }

    #[tokio::test]
    async fn block_waits_until_an_ack_frees_room_in_memory() {
        let (_, m) = metrics();
        let spool = Arc::new(Spool::memory(4 * frame(), FullPolicy::Block, m));
        spool.append(records(0..4)).await.unwrap();
        let blocked = {
            let spool = Arc::clone(&spool);
            tokio::spawn(async move { spool.append(records(4..5)).await })
        };
        wait_until("the append waits for room", || spool.room_waiters() == 1).await;
        assert!(!blocked.is_finished());
        let out = take(&spool, 4).await;
        assert!(!blocked.is_finished(), "handing out frees nothing");
        spool.ack(&[out[2].0]);
        tokio::time::timeout(Duration::from_secs(10), blocked)
            .await
            .expect("the append went through after the ack")
            .unwrap()
            .unwrap();
        assert_eq!(spool.room_waiters(), 0);
        assert_eq!(take(&spool, 1).await[0], (4, record(4)));
    }

    #[tokio::test]
    async fn drop_oldest_drops_and_counts_exactly_the_oldest_in_memory() {
        let (registry, m) = metrics();
        let spool = Spool::memory(4 * frame(), FullPolicy::DropOldest, m);
        spool.append(records(0..4)).await.unwrap();
        // Seq 0 is handed out (in flight), 1..4 wait.
        let first = take(&spool, 1).await;
        assert_eq!(first[0].0, 0);
        spool.append(records(4..6)).await.unwrap();
        assert_eq!(
            counter(
                &registry,
                "kwex_spool_dropped_documents_total",
                &[("reason", "full")]
            ),
            2
        );
        assert_eq!(spool.depth().0, 4);
        let out = take(&spool, 3).await;
        assert_eq!(
            out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![3, 4, 5],
            "1 and 2 were the oldest waiting; 0 stays with the sink"
        );
        // The record in flight is delivered and acknowledged as usual.
        spool.ack(&[0]);
        assert_eq!(spool.depth().0, 3);
    }

    #[tokio::test]
    async fn close_drains_the_memory_spool_then_ends() {
        let (_, m) = metrics();
        let spool = Spool::memory(1 << 20, FullPolicy::Block, m);
        spool.append(records(0..3)).await.unwrap();
        spool.close();
        assert!(spool.append(records(3..4)).await.is_err());
        assert_eq!(spool.next(2).await.map(|v| v.len()), Some(2));
        assert_eq!(spool.next(2).await.map(|v| v.len()), Some(1));
        assert!(spool.next(2).await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_next_wakes_up_on_append_and_on_close() {
        let (_, m) = metrics();
        let spool = Arc::new(Spool::memory(1 << 20, FullPolicy::Block, m));
        let reader = {
            let spool = Arc::clone(&spool);
            tokio::spawn(async move {
                let first = spool.next(10).await;
                let second = spool.next(10).await;
                (first.map(|v| v.len()), second.map(|v| v.len()))
            })
        };
        spool.append(records(0..2)).await.unwrap();
        wait_until("the records were handed out", || spool.depth().0 == 2).await;
        spool.close();
        assert_eq!(reader.await.unwrap(), (Some(2), None));
    }
}
