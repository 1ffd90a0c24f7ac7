//! Cutting the stream of documents into `_bulk` batches.
//!
//! A batch leaves when it holds `max_documents`, or when its body would pass
//! `max_bytes`, or `flush_delay` after its first document — whichever comes
//! first (the stackdriver exporter's `--max-buffer-size` and `--flush-delay`).
//! At most `max_concurrency` batches are in flight; when all slots are busy
//! the batcher stops reading its input, and the backpressure reaches the
//! source through the bounded channels.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Pending;
use crate::document::Record;

/// When a batch leaves.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Documents per batch at most.
    pub max_documents: usize,
    /// Body bytes per batch at most (a single larger document still goes, alone).
    pub max_bytes: usize,
    /// Longest wait after a batch's first document.
    pub flush_delay: Duration,
    /// Batches in flight at most.
    pub max_concurrency: usize,
}

/// What the batcher needs to know of an item: the bytes it adds to a body.
pub trait Weigh {
    /// Bytes this item adds to a `_bulk` body: the document and its action line.
    fn weight(&self) -> usize;
}

impl Weigh for Record {
    fn weight(&self) -> usize {
        self.body.len() + self.index.len() + self.id.len() + 40
    }
}

impl Weigh for Pending {
    fn weight(&self) -> usize {
        self.record.weight()
    }
}

/// Reads `rx` until it closes, hands each batch to `send`, and waits for the
/// last one; returns the sum of what `send` returned.
pub async fn run<T, F, Fut, R>(settings: Settings, mut rx: mpsc::Receiver<Vec<T>>, send: F) -> R
where
    T: Weigh + Send + 'static,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Default + std::ops::AddAssign + Send + 'static,
{
    let mut state = Batches {
        batch: Vec::with_capacity(settings.max_documents),
        bytes: 0,
        deadline: None,
        slots: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
        in_flight: JoinSet::new(),
        total: R::default(),
        send,
    };
    loop {
        state.collect_finished();
        let at = state.deadline;
        let timer = async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            chunk = rx.recv() => chunk,
            () = timer => {
                state.dispatch().await;
                continue;
            }
        };
        let Some(records) = input else { break };
        for record in records {
            let size = record.weight();
            if !state.batch.is_empty() && state.bytes + size > settings.max_bytes {
                state.dispatch().await;
            }
            if state.batch.is_empty() {
                state.deadline = Some(Instant::now() + settings.flush_delay);
            }
            state.bytes += size;
            state.batch.push(record);
            if state.batch.len() >= settings.max_documents {
                state.dispatch().await;
            }
        }
    }
    // Input closed (end of input or shutdown): the partial batch leaves now.
    state.dispatch().await;
    while let Some(done) = state.in_flight.join_next().await {
        if let Ok(r) = done {
            state.total += r;
        }
    }
    state.total
}

/// The batch being filled, and the batches in flight.
struct Batches<T, F, R> {
    batch: Vec<T>,
    /// Body bytes of `batch`.
    bytes: usize,
    /// When `batch` must leave (`flush_delay` after its first document).
    deadline: Option<Instant>,
    /// One permit per batch in flight.
    slots: Arc<Semaphore>,
    in_flight: JoinSet<R>,
    /// Sum of what finished batches returned.
    total: R,
    send: F,
}

impl<T, F, Fut, R> Batches<T, F, R>
where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: std::ops::AddAssign + Send + 'static,
{
    /// Adds up what finished, so results do not pile up.
    fn collect_finished(&mut self) {
        while let Some(done) = self.in_flight.try_join_next() {
            if let Ok(r) = done {
                self.total += r;
            }
        }
    }

    /// Sends the current batch (if any) once a slot is free.
    async fn dispatch(&mut self) {
        self.deadline = None;
        self.bytes = 0;
        if self.batch.is_empty() {
            return;
        }
        let capacity = self.batch.capacity();
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(capacity));
        // Waiting here for a slot is the backpressure.
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let fut = (self.send)(full);
        self.in_flight.spawn(async move {
            let result = fut.await;
            drop(permit);
            result
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn records(n: usize, size: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                id: format!("id{i}"),
                index: "i".into(),
                body: vec![b'x'; size].into(),
            })
            .collect()
    }

    fn settings() -> Settings {
        Settings {
            max_documents: 3,
            max_bytes: 1 << 20,
            flush_delay: Duration::from_secs(5),
            max_concurrency: 2,
        }
    }

    async fn batch_sizes(settings: Settings, input: Vec<Vec<Record>>) -> Vec<usize> {
        let (tx, rx) = mpsc::channel(16);
        for chunk in input {
            tx.send(chunk).await.unwrap();
        }
        drop(tx);
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let total: u64 = run(settings, rx, move |batch| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(batch.len());
                batch.len() as u64
            }
        })
        .await;
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(total, sizes.iter().sum::<usize>() as u64);
        sizes
    }

    #[tokio::test]
    async fn a_batch_leaves_when_it_holds_max_documents_and_the_rest_at_the_end() {
        let mut sizes = batch_sizes(settings(), vec![records(7, 10)]).await;
        sizes.sort_unstable();
        assert_eq!(sizes, [1, 3, 3]);
    }

    #[tokio::test]
    async fn a_batch_leaves_before_it_passes_max_bytes() {
        let s = Settings {
            max_documents: 100,
            max_bytes: 250,
            ..settings()
        };
        let sizes = batch_sizes(s, vec![records(5, 100)]).await;
        assert_eq!(sizes.iter().sum::<usize>(), 5);
        assert!(sizes.iter().all(|&n| n <= 2), "{sizes:?}");
    }

    #[tokio::test]
    async fn a_document_larger_than_max_bytes_goes_alone() {
        let s = Settings {
            max_documents: 100,
            max_bytes: 50,
            ..settings()
        };
        assert_eq!(batch_sizes(s, vec![records(2, 500)]).await, [1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_leaves_after_the_flush_delay() {
        let (tx, rx) = mpsc::channel(16);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = sent.clone();
        let task = tokio::spawn(run(settings(), rx, move |batch| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((Instant::now(), batch.len()));
                0u64
            }
        }));
        let start = Instant::now();
        tx.send(records(1, 10)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        {
            let sent = sent.lock().unwrap();
            assert_eq!(
                sent.len(),
                1,
                "sent after the flush delay, input still open"
            );
            assert_eq!(sent[0].0 - start, Duration::from_secs(5));
        }
        drop(tx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn never_more_than_max_concurrency_batches_in_flight() {
        let (tx, rx) = mpsc::channel(64);
        for _ in 0..10 {
            tx.send(records(3, 10)).await.unwrap();
        }
        drop(tx);
        let now = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let total: u64 = run(settings(), rx, move |batch| {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let current = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                p.fetch_max(current, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                n.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                batch.len() as u64
            }
        })
        .await;
        assert_eq!(total, 30);
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 2);
        assert_eq!(
            peak.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the slots are used"
        );
    }
}
