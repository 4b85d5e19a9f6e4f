//! Ingest and scrape benchmark at scale (figures, not pass/fail).
//!
//!   cargo bench --bench ingest
//!   NHI_BENCH_FINDINGS=100000 NHI_BENCH_REPOS=100 cargo bench --bench ingest
//!   NHI_BENCH_MODE=ratio cargo bench --bench ingest   # against Python's json.load
//!   NHI_BENCH_BACKEND=postgres cargo bench --bench ingest   # the store on PostgreSQL
//!
//! Default mode: generates gitleaks reports (1,000,000 findings over 1,000
//! repositories, twice: sets A and B) and measures, through the real
//! runner, store and server: first ingest of A, the KPI recompute after
//! it and again with nothing changed, an unchanged re-poll, a re-poll
//! after 1% of the reports changed, the store file, an inventory of 100,000
//! identities, `/metrics` render, and scrape latency over loopback from 8
//! keep-alive connections, idle and during the ingest of set B (1M more
//! findings) with the real exposition of everything above; peak RSS.
//!
//! `ratio` mode: 200,000 findings over 200 reports; in the same run, the
//! time Python's `json.load` takes over the same files (in-process timer,
//! interpreter start excluded) and the exporter's first ingest of them into
//! an empty store, three rounds, and the ratio.

use nhi_exporter::app::{unix_now, App};
use nhi_exporter::poll;
use nhi_exporter::server::{self, Server};
use nhi_exporter::webconfig::WebConfig;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

mod support;
use support::{env_usize, inventory, rss_kib, T0};

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

/// One keep-alive connection issuing `GET /metrics` like a Prometheus
/// scraper (plain text; the body length from `Content-Length`).
struct Scraper {
    r: BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
}

impl Scraper {
    fn connect(port: u16) -> Self {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        Scraper {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    /// One scrape: its latency and body size.
    fn get(&mut self) -> (Duration, usize) {
        let start = Instant::now();
        self.w
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut line = String::new();
        let mut len = 0;
        let mut first = true;
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            if first {
                assert!(line.starts_with("HTTP/1.1 200"), "{line}");
                first = false;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        (start.elapsed(), len)
    }
}

/// Scrape from `conns` keep-alive connections until `busy` clears (or
/// `n` scrapes each when `n > 0`), pausing `pause` between a connection's
/// scrapes; every latency and the last body size.
fn scrape_load(
    port: u16,
    conns: usize,
    n: usize,
    pause: Duration,
    busy: Arc<AtomicBool>,
) -> (Vec<Duration>, usize) {
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let busy = busy.clone();
            std::thread::spawn(move || {
                let mut s = Scraper::connect(port);
                let mut v = Vec::new();
                let mut size = 0;
                while if n > 0 {
                    v.len() < n
                } else {
                    busy.load(Ordering::Relaxed)
                } {
                    let (d, len) = s.get();
                    v.push(d);
                    size = len;
                    std::thread::sleep(pause);
                }
                (v, size)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut size = 0;
    for t in threads {
        let (v, s) = t.join().unwrap();
        all.extend(v);
        size = s;
    }
    (all, size)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn generate(dir: &Path, repos: usize, per: usize, salt: &str) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    for r in 0..repos {
        write_report(&dir.join(format!("repo{r:05}.json")), r, per, salt);
    }
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn config(dir: &Path, sets: &[&str]) -> std::path::PathBuf {
    let cfg = dir.join("nhi.yaml");
    let sources: Vec<String> = sets
        .iter()
        .map(|s| {
            format!(
                "{{name: {s}, type: gitleaks, interval: 1h, timeout: 10m, paths: ['{s}/*.json']}}"
            )
        })
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "state: {}\nsources: [{}]\n",
            support::state_yaml(dir, "bench_ingest"),
            sources.join(", ")
        ),
    )
    .unwrap();
    cfg
}

/// Poll one configured source once through the real runner; its time.
async fn ingest(app: &Arc<App>, name: &str) -> (Duration, poll::PollOutcome) {
    let scfg = app
        .config()
        .sources
        .iter()
        .find(|s| s.name == name)
        .unwrap()
        .clone();
    let source = app.source(name).unwrap();
    let t = Instant::now();
    let out = poll::poll_once(
        app.as_ref(),
        &scfg,
        source.as_ref(),
        &CancellationToken::new(),
    )
    .await;
    assert!(out.ok(), "{:?}", out.errors);
    (t.elapsed(), out)
}

async fn recompute(app: &Arc<App>) -> Duration {
    let a = app.clone();
    let t = Instant::now();
    tokio::task::spawn_blocking(move || a.recompute(unix_now()).unwrap())
        .await
        .unwrap();
    t.elapsed()
}

const PY_LOAD: &str = "import json, sys, glob, time
files = sorted(glob.glob(sys.argv[1] + '/*.json'))
t = time.perf_counter()
n = 0
for p in files:
    with open(p, 'rb') as f:
        n += len(json.load(f))
print(time.perf_counter() - t, n)
";

/// Python's `json.load` of every report in `dir`: seconds (in-process
/// timer) and the number of findings it read.
fn python_load(dir: &Path) -> (f64, usize) {
    let out = std::process::Command::new("python3")
        .args(["-c", PY_LOAD])
        .arg(dir)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    let mut it = s.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

fn ratio_mode(rt: &tokio::runtime::Runtime) {
    let total = env_usize("NHI_BENCH_FINDINGS", 200_000);
    let repos = env_usize("NHI_BENCH_REPOS", 200);
    let per = total / repos;
    let dir = tempfile::tempdir().unwrap();
    let bytes = generate(&dir.path().join("a"), repos, per, "v1");
    println!(
        "generated {} findings in {repos} reports ({:.0} MiB)",
        per * repos,
        bytes as f64 / 1048576.0
    );
    python_load(&dir.path().join("a")); // warm the page cache
    let mut ratios = Vec::new();
    for round in 1..=3 {
        let (py, n) = python_load(&dir.path().join("a"));
        assert_eq!(n, per * repos);
        let run = dir.path().join(format!("run{round}"));
        std::fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), run.join("a")).unwrap();
        let cfg = config(&run, &["a"]);
        let ours = rt.block_on(async {
            let app = App::open(&cfg).unwrap();
            let (d, out) = ingest(&app, "a").await;
            assert_eq!(out.stats.findings_new as usize, n);
            d
        });
        let r = ours.as_secs_f64() / py;
        ratios.push(r);
        println!(
            "round {round}: python json.load {py:.3} s; exporter first ingest {:.3} s; ratio {r:.2}",
            ours.as_secs_f64()
        );
    }
    ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "ratio (exporter ingest / python json.load): median {:.2}, best {:.2}",
        ratios[1], ratios[0]
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` discovery
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::var("NHI_BENCH_MODE").as_deref() == Ok("ratio") {
        return ratio_mode(&rt);
    }
    let total = env_usize("NHI_BENCH_FINDINGS", 1_000_000);
    let repos = env_usize("NHI_BENCH_REPOS", 1_000);
    let identities = env_usize("NHI_BENCH_IDENTITIES", 100_000);
    let conns = env_usize("NHI_BENCH_CONNECTIONS", 8);
    let per = total / repos;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let bytes = generate(&dir.path().join("a"), repos, per, "v1");
    generate(&dir.path().join("b"), repos, per, "v2");
    println!(
        "generated 2 x {} findings in {repos} reports ({:.0} MiB each) in {:.1?}",
        per * repos,
        bytes as f64 / 1048576.0,
        t.elapsed()
    );
    // Parse alone (one thread), to separate parsing from applying.
    let hasher = nhi_exporter::hashing::SecretHasher::new([1; 32]);
    let t = Instant::now();
    let mut n = 0;
    for r in 0..repos {
        let data = std::fs::read(dir.path().join("a").join(format!("repo{r:05}.json"))).unwrap();
        n += nhi_exporter::sources::reports::gitleaks::parse_slice(&data, "x", &hasher)
            .unwrap()
            .len();
    }
    println!(
        "parse only (read, parse, HMAC; one thread): {n} findings in {:.2?}",
        t.elapsed()
    );
    let cfg = config(dir.path(), &["a", "b"]);

    rt.block_on(async {
        let app = App::open(&cfg).unwrap();
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

        let (first, out) = ingest(&app, "a").await;
        println!(
            "first ingest: {first:.2?} ({} findings new, {} exposures new); peak RSS so far {} MiB",
            out.stats.findings_new,
            out.stats.exposures_new,
            rss_kib("VmHWM:") / 1024
        );
        println!("KPI recompute after it: {:.2?}", recompute(&app).await);
        println!("KPI recompute, nothing changed: {:.2?}", recompute(&app).await);
        let st = app.store.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || st.checkpoint().unwrap()).await.unwrap();
        println!("WAL checkpoint: {:.2?}", t.elapsed());
        let store_mb = |d: &Path| {
            if support::postgres() {
                return support::pg_size(&app.store) as f64 / 1048576.0;
            }
            std::fs::metadata(d.join("state/state.db")).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
        };
        println!("store after the first ingest: {:.0} MiB", store_mb(dir.path()));

        let (d, out) = ingest(&app, "a").await;
        println!("unchanged re-poll: {d:.2?} ({} targets read)", out.stats.targets);
        // 1% of the reports changed: every 100th repository drops its last 10% findings.
        for r in (0..repos).step_by(100) {
            write_report(&dir.path().join("a").join(format!("repo{r:05}.json")), r, per * 9 / 10, "v1");
        }
        let (d, out) = ingest(&app, "a").await;
        println!("re-poll with 1% of reports changed: {d:.2?} ({} closed)", out.stats.findings_closed);
        println!("KPI recompute after it: {:.2?}", recompute(&app).await);

        // An inventory of `identities` identities and 3x credentials.
        let st = app.store.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || {
            let inv = inventory(identities, identities * 3, 0, T0);
            let mut conn = st.writer();
            let mut ap = nhi_exporter::store::PollApplier::begin(&mut conn, "aws", T0, 100).unwrap();
            ap.inventory(&inv).unwrap();
            ap.commit().unwrap();
        })
        .await
        .unwrap();
        println!("inventory of {identities} identities applied: {:.2?}", t.elapsed());
        println!("KPI recompute with it: {:.2?}", recompute(&app).await);

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
        let (mut idle, size) = tokio::task::spawn_blocking(move || {
            scrape_load(port, conns, 200, Duration::from_millis(1), Arc::new(AtomicBool::new(true)))
        })
        .await
        .unwrap();
        assert_eq!(size, body.len());
        println!(
            "scrape, {conns} keep-alive connections, idle ({} scrapes of {size} bytes): p50 {:.2?} p99 {:.2?}",
            idle.len(),
            percentile(&mut idle, 0.5),
            percentile(&mut idle, 0.99)
        );

        // Set B (1M new findings) ingested while 8 connections scrape.
        let busy = Arc::new(AtomicBool::new(true));
        let load = {
            let busy = busy.clone();
            std::thread::spawn(move || scrape_load(port, conns, 0, Duration::from_millis(5), busy))
        };
        let (d, out) = ingest(&app, "b").await;
        busy.store(false, Ordering::Relaxed);
        let (mut during, size) = load.join().unwrap();
        println!(
            "second 1M ingest (store already full): {d:.2?} ({} findings new)",
            out.stats.findings_new
        );
        println!(
            "scrape, {conns} keep-alive connections, during it ({} scrapes of {size} bytes): p50 {:.2?} p99 {:.2?} max {:.2?}",
            during.len(),
            percentile(&mut during, 0.5),
            percentile(&mut during, 0.99),
            during.iter().max().unwrap()
        );
        println!("peak RSS: {} MiB", rss_kib("VmHWM:") / 1024);
        stop.cancel();
    });
    if std::env::var_os("NHI_BENCH_KEEP").is_some() {
        println!("kept: {}", dir.keep().display());
    }
}
