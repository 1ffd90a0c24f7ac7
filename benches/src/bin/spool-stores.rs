//! The spool's workload on kwex's segment log, redb and fjall
//! (`kwex_benches::stores`): throughput of append + hand out + acknowledge,
//! and recovery time after a clean shutdown and after `kill -9`, with N
//! unacknowledged documents. Prints Markdown tables (BENCHMARKS.md, *Spool*).
//!
//! ```text
//! spool-stores [--docs N] [--batches 256,2048] [--recovery-docs N] [--stores kwex,redb,…]
//! ```
//!
//! Each store runs in a fresh directory under `$TMPDIR` (put it on the disk
//! to measure). `spool-stores fill STORE DIR N` is the child process the
//! recovery runs kill.

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kwex_benches::stores::{self, BATCH, Kind, TempDir, disk_bytes, document_bytes, record, round};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Batch size of the recovery fill (one durable commit each).
const FILL_BATCH: usize = 2048;

struct Options {
    docs: usize,
    batches: Vec<usize>,
    recovery_docs: usize,
    stores: Vec<Kind>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("fill") {
        return fill(&args[1..]);
    }
    let mut o = Options {
        docs: 200_000,
        batches: vec![BATCH, 2048],
        recovery_docs: 100_000,
        stores: Kind::ALL.to_vec(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--docs" => o.docs = value.parse()?,
            "--recovery-docs" => o.recovery_docs = value.parse()?,
            "--batches" => {
                o.batches = value
                    .split(',')
                    .map(str::parse)
                    .collect::<std::result::Result<_, _>>()?
            }
            "--stores" => {
                o.stores = value
                    .split(',')
                    .map(|s| Kind::parse(s).ok_or_else(|| format!("unknown store {s}")))
                    .collect::<std::result::Result<_, _>>()?
            }
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    let doc = document_bytes(&record(0));
    println!(
        "Documents of {doc} bytes (id + index + body); {} appended, handed out and acknowledged per case; {} for recovery.\n",
        o.docs, o.recovery_docs
    );
    println!(
        "| store | batch (docs per fsync) | wall | documents/s | MB/s | CPU µs per document | disk at the end |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &batch in &o.batches {
        for &kind in &o.stores {
            throughput(kind, batch, o.docs, doc)?;
        }
    }
    println!(
        "\n| store | unacknowledged | on disk | reopen after clean shutdown (to first record) | after kill -9 (to first record) | then read all in order |"
    );
    println!("|---|---|---|---|---|---|");
    for &kind in &o.stores {
        recovery(kind, o.recovery_docs)?;
    }
    Ok(())
}

/// CPU time (user + system) of this process so far, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after ")".
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

fn throughput(kind: Kind, batch: usize, docs: usize, doc: usize) -> Result<()> {
    let dir = TempDir::new(&format!("{}-{batch}", kind.name()));
    let mut q = kind.open(dir.path())?;
    let mut counter = 0u64;
    // Warm-up: files created, caches filled.
    for _ in 0..4 {
        round(q.as_mut(), batch, &mut counter)?;
    }
    let rounds = docs.div_ceil(batch);
    let (cpu0, t0) = (cpu_time(), Instant::now());
    for _ in 0..rounds {
        round(q.as_mut(), batch, &mut counter)?;
    }
    let (wall, cpu) = (t0.elapsed(), cpu_time().saturating_sub(cpu0));
    let disk = disk_bytes(dir.path());
    q.close()?;
    let n = (rounds * batch) as f64;
    println!(
        "| {} | {batch} | {:.2} s | {:.0} | {:.1} | {:.1} | {:.1} MB |",
        kind.name(),
        wall.as_secs_f64(),
        n / wall.as_secs_f64(),
        n * doc as f64 / wall.as_secs_f64() / 1e6,
        cpu.as_secs_f64() * 1e6 / n,
        disk as f64 / 1e6,
    );
    Ok(())
}

/// Child: fills `DIR` with `N` unacknowledged documents, says `filled`, then
/// waits for stdin: `close` shuts down cleanly, anything else (or being
/// killed) does not.
fn fill(args: &[String]) -> Result<()> {
    let [kind, dir, n] = args else {
        return Err("usage: spool-stores fill STORE DIR N".into());
    };
    let kind = Kind::parse(kind).ok_or("unknown store")?;
    let n: usize = n.parse()?;
    let mut q = kind.open(Path::new(dir))?;
    let mut i = 0u64;
    while (i as usize) < n {
        let take = FILL_BATCH.min(n - i as usize);
        q.append(stores::records(i, take))?;
        i += take as u64;
    }
    println!("filled");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() == "close" {
        q.close()?;
    } else {
        std::process::exit(9);
    }
    Ok(())
}

/// Fills a directory in a child process, stops it (cleanly or with SIGKILL),
/// then times the reopen until the first record is handed out.
fn reopen_after(kind: Kind, n: usize, clean: bool) -> Result<(Duration, Duration, u64)> {
    let dir = TempDir::new(&format!("recovery-{}-{clean}", kind.name()));
    let mut child = Command::new(std::env::current_exe()?)
        .arg("fill")
        .arg(kind.name())
        .arg(dir.path())
        .arg(n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "filled" {
        let _ = child.kill();
        return Err(format!("{}: the fill failed", kind.name()).into());
    }
    if clean {
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(b"close\n")?;
        let mut rest = String::new();
        out.read_to_string(&mut rest)?;
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("{}: the clean close failed", kind.name()).into());
        }
    } else {
        child.kill()?; // SIGKILL
        child.wait()?;
    }
    let disk = disk_bytes(dir.path());
    let t0 = Instant::now();
    let mut q = kind.open(dir.path())?;
    let first = q.next(1)?;
    let to_first = t0.elapsed();
    if first.first().map(|(_, r)| r.id.as_str()) != Some(record(0).id.as_str()) {
        return Err(format!("{}: the first record is not document 0", kind.name()).into());
    }
    let mut seen = first.len();
    while seen < n {
        let got = q.next(FILL_BATCH)?;
        if got.is_empty() {
            return Err(format!("{}: {seen} of {n} records after reopening", kind.name()).into());
        }
        seen += got.len();
    }
    let to_all = t0.elapsed();
    q.close()?;
    Ok((to_first, to_all, disk))
}

fn recovery(kind: Kind, n: usize) -> Result<()> {
    let (clean, _, _) = reopen_after(kind, n, true)?;
    let (crash, all, disk) = reopen_after(kind, n, false)?;
    println!(
        "| {} | {n} | {:.1} MB | {:.1} ms | {:.1} ms | {:.0} ms |",
        kind.name(),
        disk as f64 / 1e6,
        clean.as_secs_f64() * 1e3,
        crash.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3,
    );
    Ok(())
}
