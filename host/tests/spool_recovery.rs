//! The spool under real `kill -9`: a child process appends and acknowledges
//! as fast as it can and is killed at a random moment, again and again, on
//! the same directory. Every record whose `append` had returned, and that was
//! not being acknowledged, must still be there after each restart, and the
//! log must never be damaged (a torn tail is allowed: it is cut).
//!
//! The child is this test binary again, running `spool_child_writer` with
//! `KWEX_SPOOL_CHILD_DIR` set; it prints `appended <id>` after each append
//! returns and `acking <id>` before each acknowledgement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kwex::document::Record;
use kwex::spool::{Metrics, Settings, Spool};

const CHILD_DIR: &str = "KWEX_SPOOL_CHILD_DIR";
const CHILD_ROUND: &str = "KWEX_SPOOL_CHILD_ROUND";

fn settings(dir: PathBuf) -> Settings {
    Settings {
        // Small segments, so that kills also land on rolls and deletions.
        segment_bytes: 64 << 10,
        sync_interval: Duration::from_millis(2),
        ..Settings::new(dir, 1 << 30)
    }
}

/// Runs only as the child of the test below.
#[test]
fn spool_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let round = std::env::var(CHILD_ROUND).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // libtest's "test spool_child_writer ... " has no newline: end it.
    println!();
    rt.block_on(async move {
        let metrics = Metrics::unregistered().unwrap();
        let (spool, _) = Spool::open_disk(settings(dir.into()), metrics)
            .await
            .unwrap();
        let spool = Arc::new(spool);
        for task in 0..4 {
            let spool = Arc::clone(&spool);
            let round = round.clone();
            tokio::spawn(async move {
                for n in 0u64.. {
                    let batch: Vec<Record> = (0..fastrand::u64(1..16))
                        .map(|i| Record {
                            id: format!("r{round}-t{task}-{n}-{i}"),
                            index: "kwex-test".into(),
                            body: Bytes::from(vec![b'x'; fastrand::usize(10..2000)]),
                        })
                        .collect();
                    let ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
                    spool.append(batch).await.unwrap();
                    for id in ids {
                        println!("appended {id}");
                    }
                }
            });
        }
        let consumer = {
            let spool = Arc::clone(&spool);
            tokio::spawn(async move {
                while let Some(got) = spool.next(64).await {
                    // The sink finishes about half of what it gets.
                    let done: Vec<_> = got.into_iter().filter(|_| fastrand::bool()).collect();
                    for (_, r) in &done {
                        println!("acking {}", r.id);
                    }
                    spool.ack(&done.iter().map(|(s, _)| *s).collect::<Vec<_>>());
                }
            })
        };
        // A safety net if the parent never kills us.
        let _ = tokio::time::timeout(Duration::from_secs(60), consumer).await;
        std::process::exit(3);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_moment_loses_no_record_whose_append_returned() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-spool-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut appended: HashSet<String> = HashSet::new();
    // Kept apart: a record can be handed out and acknowledged before its
    // appender prints that the append returned.
    let mut acking: HashSet<String> = HashSet::new();
    let mut total_confirmed = 0usize;
    let mut truncated = 0u64;
    for round in 0..8 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "spool_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &dir)
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill after a random number of confirmations (0: during start-up).
        let kill_after = if round == 0 {
            0
        } else {
            fastrand::usize(1..3000)
        };
        let stdout = child.stdout.take().unwrap();
        let lines = tokio::task::spawn_blocking(move || {
            let mut lines = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut seen = 0;
            let mut killed = false;
            let mut line = String::new();
            loop {
                if !killed && seen >= kill_after {
                    child.kill().unwrap(); // SIGKILL
                    killed = true;
                }
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line.contains("appended ") {
                    seen += 1;
                }
                lines.push(line.trim_end().to_owned());
            }
            let status = child.wait().unwrap();
            (lines, status)
        })
        .await
        .unwrap();
        let (lines, status) = lines;
        assert!(
            status.code().is_none(),
            "round {round}: the child was killed, not {status}"
        );
        for l in &lines {
            if let Some((_, id)) = l.split_once("appended ") {
                appended.insert(id.to_owned());
                total_confirmed += 1;
            } else if let Some((_, id)) = l.split_once("acking ") {
                acking.insert(id.to_owned());
            }
        }

        let (spool, recovery) =
            Spool::open_disk(settings(dir.clone()), Metrics::unregistered().unwrap())
                .await
                .unwrap();
        assert!(
            recovery.damaged.is_empty(),
            "round {round}: a kill must not damage the log: {:?}",
            recovery.damaged
        );
        truncated += recovery.truncated_bytes;
        spool.close();
        let mut present = HashSet::new();
        while let Some(got) = spool.next(1000).await {
            for (_, r) in got {
                assert!(present.insert(r.id.clone()), "{} handed out twice", r.id);
            }
        }
        let missing: Vec<_> = appended
            .iter()
            .filter(|id| !acking.contains(*id) && !present.contains(*id))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: confirmed and never acknowledged, but gone: {missing:?}"
        );
    }
    eprintln!(
        "8 kills: {total_confirmed} appends confirmed, {} still unacknowledged and all present, {truncated} torn bytes cut",
        appended.difference(&acking).count()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
