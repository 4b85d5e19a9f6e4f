//! Ingest and scrape benchmark at scale (figures, not pass/fail).
//!
//!   cargo bench --bench ingest
//!   NHI_BENCH_FINDINGS=100000 NHI_BENCH_REPOS=100 cargo bench --bench ingest
//!
//! Generates gitleaks reports (default 1,000,000 findings over 1,000
//! repositories) and measures, through the real runner, store and server:
//! first ingest, an unchanged re-poll, a re-poll after 1% of the reports
//! changed, KPI recompute, `/metrics` render, scrape latency over loopback
//! while idle and during an ingest, and peak RSS.

use nhi_exporter::app::{unix_now, App};
use nhi_exporter::poll;
use nhi_exporter::server::{self, Server};
use nhi_exporter::webconfig::WebConfig;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

mod support;
use support::{env_usize, rss_kib};

const RULES: [&str; 12] = [
    "aws-access-token",
    "generic-api-key",
    "github-pat",
    "slack-webhook-url",
    "stripe-access-token",
    "private-key",
    "gcp-api-key",
    "jwt",
    "npm-access-token",
    "gitlab-pat",
    "twilio-api-key",
    "sendgrid-api-token",
];

fn write_report(path: &Path, repo: usize, per: usize, salt: &str) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = BufWriter::with_capacity(1 << 20, f);
    w.write_all(b"[").unwrap();
    for i in 0..per {
        if i > 0 {
            w.write_all(b",").unwrap();
        }
        let rule = RULES[(repo * 7 + i) % RULES.len()];
        // 10% of secrets are shared with the next repository (copied code).
        let secret = if i % 10 == 0 {
            format!("shared-{}-{i}", repo / 2)
        } else {
            format!("secret-{repo}-{i}-{salt}")
        };
        let commit = format!("{:040x}", (repo as u128) << 64 | i as u128);
        write!(
            w,
            r#"{{"RuleID":"{rule}","Description":"{rule}","StartLine":{i},"EndLine":{i},"StartColumn":1,"EndColumn":40,"Match":"key = {secret}","Secret":"{secret}","File":"src/module{m}/file{i}.py","SymlinkFile":"","Commit":"{commit}","Link":"https://git.example.com/org/repo{repo}/blob/{commit}/src/module{m}/file{i}.py#L{i}","Entropy":4.1,"Author":"Dev","Email":"dev@example.com","Date":"2026-01-01T00:00:00Z","Message":"commit","Tags":[],"Fingerprint":"{commit}:src/module{m}/file{i}.py:{rule}:{i}"}}"#,
            m = i % 50
        )
        .unwrap();
    }
    w.write_all(b"]").unwrap();
    w.flush().unwrap();
}

fn http_get(port: u16, path: &str) -> Duration {
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    start.elapsed()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` discovery
    }
    let total = env_usize("NHI_BENCH_FINDINGS", 1_000_000);
    let repos = env_usize("NHI_BENCH_REPOS", 1_000);
    let per = total / repos;
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let t = Instant::now();
    for r in 0..repos {
        write_report(&reports.join(format!("repo{r:05}.json")), r, per, "v1");
    }
    let bytes: u64 = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "generated {} findings in {repos} reports ({:.0} MiB) in {:.1?}",
        per * repos,
        bytes as f64 / 1048576.0,
        t.elapsed()
    );
    // Parse alone (one thread), to separate parsing from applying.
    let hasher = nhi_exporter::hashing::SecretHasher::new([1; 32]);
    let t = Instant::now();
    let mut n = 0;
    for r in 0..repos {
        let p = reports.join(format!("repo{r:05}.json"));
        let data = std::fs::read(&p).unwrap();
        n += nhi_exporter::sources::reports::gitleaks::parse_slice(&data, "x", &hasher)
            .unwrap()
            .len();
    }
    println!(
        "parse only (read, parse, HMAC): {n} findings in {:.2?}",
        t.elapsed()
    );
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state/state.db}\nsources: [{name: bench, type: gitleaks, interval: 1h, timeout: 10m, paths: ['reports/*.json']}]\n",
    )
    .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = App::open(&cfg).unwrap();
        let scfg = app.config().sources[0].clone();
        let source = app.source(&scfg.name).unwrap();
        app.render();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let srv = Server {
            app: app.clone(),
            telemetry_path: "/metrics".into(),
            web: Arc::new(RwLock::new(Arc::new(WebConfig::plain()))),
            reload: Arc::new(|| Ok(())),
            lifecycle: false,
            landing: Default::default(),
        };
        let stop = CancellationToken::new();
        tokio::spawn(server::serve(srv, listener, stop.clone()));

        // Scrape latency while idle.
        let idle = tokio::task::spawn_blocking(move || {
            let mut v: Vec<Duration> = (0..500).map(|_| http_get(port, "/metrics")).collect();
            (percentile(&mut v, 0.5), percentile(&mut v, 0.99))
        })
        .await
        .unwrap();

        // First ingest, with a scraper running alongside.
        let busy = Arc::new(AtomicBool::new(true));
        let scraper = {
            let busy = busy.clone();
            std::thread::spawn(move || {
                let mut v = Vec::new();
                while busy.load(Ordering::Relaxed) {
                    v.push(http_get(port, "/metrics"));
                    std::thread::sleep(Duration::from_millis(5));
                }
                v
            })
        };
        let t = Instant::now();
        let out = poll::poll_once(app.as_ref(), &scfg, source.as_ref(), &CancellationToken::new()).await;
        let first = t.elapsed();
        busy.store(false, Ordering::Relaxed);
        let mut during = scraper.join().unwrap();
        assert!(out.ok(), "{:?}", out.errors);
        println!(
            "first ingest: {first:.2?} ({} findings new, {} exposures new)",
            out.stats.findings_new, out.stats.exposures_new
        );
        let a = app.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || a.recompute(unix_now()).unwrap()).await.unwrap();
        println!("KPI recompute (new snapshot served after): {:.2?}", t.elapsed());
        let st = app.store.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || st.checkpoint().unwrap()).await.unwrap();
        println!("WAL checkpoint (after the snapshot is served): {:.2?}", t.elapsed());

        let t = Instant::now();
        let out = poll::poll_once(app.as_ref(), &scfg, source.as_ref(), &CancellationToken::new()).await;
        assert!(out.ok());
        println!("unchanged re-poll: {:.2?} ({} targets read)", t.elapsed(), out.stats.targets);

        // 1% of the reports changed: every 100th repository drops its last 10% findings.
        for r in (0..repos).step_by(100) {
            write_report(&reports.join(format!("repo{r:05}.json")), r, per * 9 / 10, "v1");
        }
        let t = Instant::now();
        let out = poll::poll_once(app.as_ref(), &scfg, source.as_ref(), &CancellationToken::new()).await;
        assert!(out.ok());
        println!(
            "re-poll with 1% of reports changed: {:.2?} ({} closed)",
            t.elapsed(),
            out.stats.findings_closed
        );
        let a = app.clone();
        tokio::task::spawn_blocking(move || a.recompute(unix_now()).unwrap()).await.unwrap();

        let mut renders = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            app.render();
            renders.push(t.elapsed());
        }
        let body = app.exposition();
        println!(
            "/metrics render (gather + encode, off the scrape path): p50 {:.2?}, p99 {:.2?}; {} bytes, {} series",
            percentile(&mut renders, 0.5),
            percentile(&mut renders, 0.99),
            body.len(),
            body.split(|b| *b == b'\n').filter(|l| !l.is_empty() && l[0] != b'#').count()
        );
        println!(
            "scrape over loopback, idle: p50 {:.2?} p99 {:.2?}; during first ingest ({} scrapes): p50 {:.2?} p99 {:.2?}",
            idle.0,
            idle.1,
            during.len(),
            percentile(&mut during, 0.5),
            percentile(&mut during, 0.99)
        );
        let store_mb = std::fs::metadata(dir.path().join("state/state.db")).map(|m| m.len()).unwrap_or(0) as f64
            / 1048576.0;
        println!(
            "peak RSS: {} MiB; store file: {store_mb:.0} MiB",
            rss_kib("VmHWM:") / 1024
        );
        stop.cancel();
    });
}
