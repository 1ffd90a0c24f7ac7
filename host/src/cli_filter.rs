//! `kwex filter test | bench | inspect`: glue between the flags and
//! `kwex::filter::{testing, inspect}`, printing for people.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kwex::config::{
    FilterBenchArgs, FilterCommand, FilterInspectArgs, FilterTestArgs, FilterUnderTest,
};
use kwex::filter::{Chain, Engine, FilterSpec, Metrics, testing};

/// Runs one `kwex filter` command.
pub fn run(command: FilterCommand) -> anyhow::Result<ExitCode> {
    match command {
        FilterCommand::Test(args) => test(args),
        FilterCommand::Bench(args) => bench(args),
        FilterCommand::Inspect(args) => inspect(args),
    }
}

/// The engine and the spec of the filter under test.
fn prepare(f: &FilterUnderTest) -> anyhow::Result<(Engine, FilterSpec)> {
    let mut settings = f.sandbox.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.max_instances = 16;
    settings.grants.clock = f.grant_clock;
    let engine = crate::engine(settings)?;
    let mut spec = FilterSpec::new(&engine, &f.filter);
    if let Some(config) = &f.config {
        spec.config = testing::parse_config(config).map_err(anyhow::Error::msg)?;
    }
    Ok((engine, spec))
}

/// Reads Events into Documents on a small runtime, reporting refused ones.
fn documents(path: &std::path::Path) -> anyhow::Result<Vec<kwex::document::Record>> {
    let docs = crate::block_on(async {
        testing::read_documents(path)
            .await
            .with_context(|| format!("cannot read Events from {}", path.display()))
    })?;
    for refused in &docs.refused {
        eprintln!("kwex: skipped (not a valid Event) {refused}");
    }
    Ok(docs.records)
}

fn load(engine: &Engine, spec: FilterSpec) -> anyhow::Result<Chain> {
    let metrics = Metrics::register(&prometheus::Registry::new())?;
    Ok(Chain::from_specs(engine, vec![spec], &metrics)?)
}

fn test(args: FilterTestArgs) -> anyhow::Result<ExitCode> {
    let (engine, spec) = prepare(&args.filter)?;
    let golden = match &args.expect {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read golden file {}", path.display()))?;
            Some(testing::parse_golden(&text).map_err(|e| {
                anyhow::anyhow!("golden file {} is not NDJSON: {e}", path.display())
            })?)
        }
        None => None,
    };
    let records = documents(&args.events)?;
    let chain = load(&engine, spec)?;
    let mut worker = chain.worker();

    let mut out = std::io::stdout().lock();
    let mut lines = Vec::with_capacity(records.len());
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (i, record) in records.iter().enumerate() {
        let answer = worker
            .call(0, &record.body)
            .context("the chain has no filter")?;
        let line = testing::answer_line(i + 1, &record.id, &answer);
        let verdict = line["verdict"].as_str().unwrap_or("?").to_owned();
        *counts.entry(verdict).or_default() += 1;
        writeln!(out, "{line}")?;
        lines.push(line);
    }
    drop(out);
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!("kwex: {} documents: {}", records.len(), summary.join(", "));

    let mut ok = true;
    if let Some(golden) = golden {
        let mismatches = testing::compare_golden(&lines, &golden);
        for m in &mismatches {
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref().map_or("(no line)".to_owned(), |v| v.to_string())
            };
            eprintln!(
                "kwex: line {} differs\n  expected: {}\n  actual:   {}",
                m.line,
                show(&m.expected),
                show(&m.actual)
            );
        }
        match mismatches.len() {
            0 => eprintln!("kwex: all {} lines match the golden file", golden.len()),
            n => {
                eprintln!("kwex: {n} lines differ from the golden file");
                ok = false;
            }
        }
    }
    if args.conformance {
        let mut failed = 0;
        for (name, record) in testing::standard_documents() {
            let answer = worker
                .call(0, &record.body)
                .context("the chain has no filter")?;
            match answer {
                Err(e) if e.kind() != kwex::filter::ErrorKind::GuestError => {
                    failed += 1;
                    eprintln!("kwex: conformance: {name}: FAILED: {e}");
                }
                _ => {}
            }
        }
        match failed {
            0 => eprintln!(
                "kwex: conformance: all {} standard documents survived",
                testing::standard_documents().len()
            ),
            n => {
                eprintln!("kwex: conformance: {n} standard documents failed");
                ok = false;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench(args: FilterBenchArgs) -> anyhow::Result<ExitCode> {
    let (engine, spec) = prepare(&args.filter)?;
    let name = spec.name.clone();
    let records = documents(&args.events)?;
    anyhow::ensure!(
        !records.is_empty(),
        "{} holds no Events",
        args.events.display()
    );
    let chain = load(&engine, spec)?;
    let mut worker = chain.worker();

    let run = |worker: &mut kwex::filter::ChainWorker, time: Duration, samples: &mut Vec<u32>| {
        let mut calls = 0u64;
        let mut failures = std::collections::BTreeMap::<&'static str, u64>::new();
        let started = Instant::now();
        'outer: loop {
            for record in &records {
                let t = Instant::now();
                let answer = worker.call(0, &record.body);
                samples.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
                match answer {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => *failures.entry(e.kind().as_str()).or_default() += 1,
                    None => *failures.entry("no filter").or_default() += 1,
                }
                calls += 1;
                if started.elapsed() >= time {
                    break 'outer;
                }
            }
        }
        (calls, failures, started.elapsed())
    };
    let mut warmup = Vec::new();
    run(&mut worker, args.duration / 10, &mut warmup);
    let mut samples = Vec::with_capacity(1 << 20);
    let (calls, failures, elapsed) = run(&mut worker, args.duration, &mut samples);
    samples.sort_unstable();
    let pct = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        f64::from(samples.get(i).copied().unwrap_or(0)) / 1000.0
    };
    let per_call = elapsed.as_secs_f64() * 1e6 / calls.max(1) as f64;
    let bytes: usize = records.iter().map(|r| r.body.len()).sum();
    let failed: u64 = failures.values().sum();
    let kinds: Vec<String> = failures.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    let failures = match failed {
        0 => "0 failed calls".to_owned(),
        n => format!("{n} failed calls ({})", kinds.join(", ")),
    };
    println!(
        "{name}: {calls} calls in {:.2} s: {:.0} calls/s, {per_call:.2} µs/call (p50 {:.2} µs, p99 {:.2} µs), \
         {} documents of {} bytes on average, {failures}",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        records.len(),
        bytes / records.len(),
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: FilterInspectArgs) -> anyhow::Result<ExitCode> {
    let (engine, spec) = prepare(&args.filter)?;
    let path = spec.path.display().to_string();
    let report = kwex::filter::inspect::inspect(&engine, spec)?;
    println!(
        "{path}: {}, {} bytes, compiled in {:.0?}",
        report.format, report.bytes, report.compile_time
    );
    println!("imports ({}):", report.imports.len());
    for i in &report.imports {
        println!("  {i}");
    }
    println!("exports ({}):", report.exports.len());
    for e in &report.exports {
        println!("  {e}");
    }
    match &report.verdict {
        Ok(abi) => {
            println!("loads: yes, {abi}; sandbox: nothing granted beyond what the flags say");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("loads: no: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}
