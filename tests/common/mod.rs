//! Shared helpers for the end-to-end tests: run the real binary on a free
//! loopback port, scrape it, parse the exposition.
#![allow(dead_code)]

pub mod moto;
pub mod openbao;
pub mod pg;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_nhi-exporter");

/// Run the binary with `--config.file=config`, `args` and `--once`; assert
/// it exits 0 (stderr in the message) and return its stdout.
pub fn once_ok(config: &Path, args: &[&str]) -> String {
    stdout_ok(
        Command::new(BIN)
            .arg(format!("--config.file={}", config.display()))
            .args(args)
            .arg("--once"),
    )
}

/// Run `cmd`; assert it exits 0 (stderr in the message) and return its
/// stdout.
pub fn stdout_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Exporter {
    pub child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    pub scheme: &'static str,
}

impl Exporter {
    pub fn start(config: &Path, log: &Path, extra: &[&str]) -> Exporter {
        Self::start_with(config, log, extra, "http", true)
    }

    pub fn start_with(
        config: &Path,
        log: &Path,
        extra: &[&str],
        scheme: &'static str,
        wait: bool,
    ) -> Exporter {
        let port = free_port();
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=debug")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start nhi-exporter");
        let e = Exporter {
            child: Some(child),
            port,
            log: log.to_path_buf(),
            scheme,
        };
        if wait {
            e.wait_listening();
        }
        e
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{}", self.scheme, self.port, path)
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("exporter did not listen; log:\n{}", self.log_text());
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::blocking::get(self.url(path)).unwrap();
        let code = r.status().as_u16();
        (code, r.text().unwrap())
    }

    pub fn post(&self, path: &str) -> (u16, String) {
        let r = reqwest::blocking::Client::new()
            .post(self.url(path))
            .send()
            .unwrap();
        let code = r.status().as_u16();
        (code, r.text().unwrap())
    }

    pub fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200);
        body
    }

    /// Wait until `pred` holds on the scraped metrics.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = Metrics::parse(&self.metrics());
            if pred(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last scrape:\n{}\nlog:\n{}",
                    m.text,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM and wait; returns the exit status and how long it took.
    pub fn stop(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("exporter did not stop within 15s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub type Series = Vec<(BTreeMap<String, String>, f64)>;

/// A parsed text exposition: `name{labels}` → value.
pub struct Metrics {
    pub text: String,
    pub samples: BTreeMap<String, Series>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples: BTreeMap<String, Series> = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                v => v.parse().unwrap(),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((n, rest)) => {
                    let rest = rest.trim_end_matches('}');
                    let mut l = BTreeMap::new();
                    for kv in rest.split("\",").filter(|s| !s.is_empty()) {
                        let (k, v) = kv.split_once('=').unwrap();
                        l.insert(k.to_string(), v.trim_matches('"').to_string());
                    }
                    (n.to_string(), l)
                }
            };
            samples.entry(name).or_default().push((labels, value));
        }
        Metrics {
            text: text.to_string(),
            samples,
        }
    }

    /// The value of the one series of `name` whose labels include `want`.
    pub fn get(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let v: Vec<f64> = self
            .samples
            .get(name)?
            .iter()
            .filter(|(l, _)| {
                want.iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| *v)
            .collect();
        match v.len() {
            0 => None,
            1 => Some(v[0]),
            n => panic!("{name} {want:?} matches {n} series"),
        }
    }

    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .get(name)
            .map(|s| {
                s.iter()
                    .filter(|(l, _)| {
                        want.iter()
                            .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                    })
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0.0)
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.contains_key(name)
    }
}

/// A gitleaks JSON finding with a given secret (plus a non-secret match
/// text that quotes it, as gitleaks does).
pub fn gl_finding(
    rule: &str,
    secret: &str,
    file: &str,
    line: u32,
    commit: &str,
) -> serde_json::Value {
    serde_json::json!({
        "RuleID": rule, "Description": rule, "StartLine": line, "EndLine": line,
        "StartColumn": 1, "EndColumn": 40, "Match": format!("key = \"{secret}\""), "Secret": secret,
        "File": file, "SymlinkFile": "", "Commit": commit,
        "Link": format!("https://git.example.com/acme/repo/blob/{commit}/{file}#L{line}"),
        "Entropy": 4.0, "Author": "Dev", "Email": "dev@example.com", "Date": "2026-01-01T00:00:00Z",
        "Message": "m", "Tags": [], "Fingerprint": format!("{commit}:{file}:{rule}:{line}")
    })
}

/// A gitleaks finding of AWS's documented example key pair, whose match
/// holds `secret` (the secret access key).
pub fn gl_aws_finding(secret: &str) -> serde_json::Value {
    let mut f = gl_finding(
        "aws-access-token",
        "AKIAIOSFODNN7EXAMPLE",
        "deploy/prod.env",
        3,
        "c1",
    );
    f["Match"] = serde_json::Value::String(format!("AKIAIOSFODNN7EXAMPLE:{secret}"));
    f
}

/// Write a report atomically (write then rename), as CI jobs should.
pub fn write_report(path: &Path, findings: &[serde_json::Value]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(findings).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Every file under `dir`, concatenated (store, WAL, key...).
pub fn read_all_files(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let mut f = std::fs::File::open(&e).unwrap();
        f.read_to_end(&mut out).unwrap();
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
