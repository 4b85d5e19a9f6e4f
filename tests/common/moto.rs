//! Real moto server on a loopback port, for the aws tests, and a counting
//! reverse proxy in front of it (upstream requests by `Action`).
//! Self-contained so that `benches/aws.rs` can include it by path.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const ACCOUNT: &str = "123456789012";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free loopback port")
}

/// `moto_server` on PATH, else `$CARGO_MANIFEST_DIR/.venv/bin/moto_server`.
pub fn moto_binary() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("moto_server");
            if p.is_file() {
                return p;
            }
        }
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if p.is_file() {
        return p;
    }
    panic!(
        "moto_server not found on PATH nor at {}: run scripts/test.sh once \
         (it installs the pinned moto[server] into .venv), or \
         `python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5'`",
        p.display()
    );
}

/// Point the AWS SDK of this process at fake static credentials (for moto
/// only), never at the host's own configuration.
pub fn set_sdk_env(region: &str) {
    // SAFETY (edition 2021: safe fn): every test sets the same values.
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
    std::env::remove_var("AWS_SESSION_TOKEN");
    std::env::remove_var("AWS_PROFILE");
    std::env::set_var("AWS_REGION", region);
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/nhi-exporter-test");
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/nhi-exporter-test",
    );
}

pub struct Moto {
    child: Option<Child>,
    pub port: u16,
    pub endpoint: String,
}

impl Moto {
    /// Start moto (AWS managed policies loaded) and wait until it answers.
    pub fn start() -> Moto {
        let bin = moto_binary();
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let m = Moto {
            child: Some(child),
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(
                    b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                );
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return m;
                }
            }
            if Instant::now() > deadline {
                panic!("moto_server did not answer on port {port} within 30s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (faults tests); Drop does it too.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SDK configuration for seeding moto directly.
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        set_sdk_env(region);
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback reverse proxy that counts requests by API action (`Action=`
/// of the query protocol, or the `X-Amz-Target` operation of JSON APIs).
pub struct CountingProxy {
    pub endpoint: String,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// (account, action) → requests; see [`CountingProxy::account_counts`].
    by_account: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    faults: Faults,
    task: tokio::task::JoinHandle<()>,
}

/// Injected failures: (substring of the `Authorization` header, e.g.
/// `/eu-west-1/secretsmanager/`, HTTP status, content type, body).
type Faults = Arc<Mutex<Vec<(String, u16, &'static str, String)>>>;

fn action_of(headers: &hyper::HeaderMap, query: Option<&str>, body: &[u8]) -> String {
    if let Some(t) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    let form = std::str::from_utf8(body).unwrap_or("");
    for part in form.split('&').chain(query.unwrap_or("").split('&')) {
        if let Some(a) = part.strip_prefix("Action=") {
            return a.to_string();
        }
    }
    "unknown".to_string()
}

/// The access key id of a SigV4 `Authorization` header (`Credential=KEY/...`).
fn key_of(auth: &str) -> String {
    auth.split("Credential=")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("")
        .to_string()
}

/// The account of the `RoleArn` of an AssumeRole form body.
fn role_account_of(form: &str) -> Option<String> {
    let arn = form.split('&').find_map(|p| p.strip_prefix("RoleArn="))?;
    let arn = arn.replace("%3A", ":");
    arn.split(':').nth(4).map(str::to_string)
}

/// The text of the first `<name>` element of an XML body.
fn xml_value(body: &[u8], name: &str) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    let start = s.find(&format!("<{name}>"))? + name.len() + 2;
    let end = s[start..].find(&format!("</{name}>"))? + start;
    Some(s[start..end].to_string())
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> CountingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let counts: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(32)
            .build()
            .expect("reqwest client");
        let upstream = upstream.trim_end_matches('/').to_string();
        let c2 = counts.clone();
        let faults: Faults = Arc::default();
        let f2 = faults.clone();
        let by_account: Arc<Mutex<BTreeMap<(String, String), u64>>> = Arc::default();
        let b2 = by_account.clone();
        // Access key id → account, learnt from AssumeRole responses.
        let sessions: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counts = c2.clone();
                let faults = f2.clone();
                let by_account = b2.clone();
                let sessions = sessions.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let counts = counts.clone();
                            let faults = faults.clone();
                            let by_account = by_account.clone();
                            let sessions = sessions.clone();
                            let client = client.clone();
                            let upstream = upstream.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let action = action_of(&parts.headers, parts.uri.query(), &body);
                                *counts.lock().unwrap().entry(action.clone()).or_default() += 1;
                                let auth = parts
                                    .headers
                                    .get(hyper::header::AUTHORIZATION)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string();
                                let key = key_of(&auth);
                                let account = sessions
                                    .lock()
                                    .unwrap()
                                    .get(&key)
                                    .cloned()
                                    .unwrap_or_else(|| "self".to_string());
                                *by_account
                                    .lock()
                                    .unwrap()
                                    .entry((account, action.clone()))
                                    .or_default() += 1;
                                let form = String::from_utf8_lossy(&body).to_string();
                                let fault = faults
                                    .lock()
                                    .unwrap()
                                    .iter()
                                    .find(|(m, ..)| {
                                        auth.contains(m.as_str()) || form.contains(m.as_str())
                                    })
                                    .cloned();
                                if let Some((_, status, ctype, body)) = fault {
                                    return Ok(hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", ctype)
                                        .body(Full::new(Bytes::from(body)))
                                        .unwrap());
                                }
                                let pq = parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.as_str())
                                    .unwrap_or("/");
                                let mut headers = parts.headers.clone();
                                headers.remove(hyper::header::HOST);
                                headers.remove(hyper::header::CONTENT_LENGTH);
                                let resp = client
                                    .request(parts.method.clone(), format!("{upstream}{pq}"))
                                    .headers(headers)
                                    .body(body)
                                    .send()
                                    .await;
                                let out = match resp {
                                    Ok(r) => {
                                        let status = r.status();
                                        let headers = r.headers().clone();
                                        let bytes = r.bytes().await.unwrap_or_default();
                                        if action == "AssumeRole" && status.is_success() {
                                            if let (Some(acct), Some(k)) = (
                                                role_account_of(&form),
                                                xml_value(&bytes, "AccessKeyId"),
                                            ) {
                                                sessions.lock().unwrap().insert(k, acct);
                                            }
                                        }
                                        let mut b = hyper::Response::builder().status(status);
                                        for (k, v) in headers.iter() {
                                            if k != hyper::header::CONTENT_LENGTH
                                                && k != hyper::header::TRANSFER_ENCODING
                                                && k != hyper::header::CONNECTION
                                            {
                                                b = b.header(k, v);
                                            }
                                        }
                                        b.body(Full::new(bytes)).unwrap()
                                    }
                                    Err(_) => hyper::Response::builder()
                                        .status(502)
                                        .body(Full::new(Bytes::from_static(b"upstream down")))
                                        .unwrap(),
                                };
                                Ok::<_, std::convert::Infallible>(out)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        CountingProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            counts,
            by_account,
            faults,
            task,
        }
    }

    /// Answer every request of one region's Secrets Manager with
    /// `AccessDeniedException` (HTTP 400, JSON protocol).
    pub fn deny_secrets_region(&self, region: &str) {
        self.faults.lock().unwrap().push((
            format!("/{region}/secretsmanager/"),
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"AccessDeniedException","message":"not authorized to perform secretsmanager:ListSecrets"}"#.to_string(),
        ));
    }

    /// Answer every IAM request with `AccessDenied` (HTTP 403, query
    /// protocol XML).
    pub fn deny_iam(&self) {
        self.faults.lock().unwrap().push((
            "/iam/aws4_request".to_string(),
            403,
            "text/xml",
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/nhi is not authorized to perform: iam:GetAccountAuthorizationDetails</Message></Error><RequestId>4e7a6f2c</RequestId></ErrorResponse>".to_string(),
        ));
    }

    /// Answer `sts:AssumeRole` of any role in `account` with STS's
    /// `AccessDenied` (HTTP 403), as AWS does when the role does not exist
    /// or does not trust the caller. moto itself lets any role be assumed,
    /// existing or not.
    pub fn deny_assume_role(&self, account: &str) {
        self.faults.lock().unwrap().push((
            format!("RoleArn=arn%3Aaws%3Aiam%3A%3A{account}%3Arole"),
            403,
            "text/xml",
            format!("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/nhi is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{account}:role/nhi-exporter-read</Message></Error><RequestId>c2f1a0b4</RequestId></ErrorResponse>"),
        ));
    }

    /// Requests per action made with the credentials of an assumed role in
    /// `account` (`"self"`: the caller's own credentials).
    pub fn account_counts(&self, account: &str) -> BTreeMap<String, u64> {
        self.by_account
            .lock()
            .unwrap()
            .iter()
            .filter(|((a, _), _)| a == account)
            .map(|((_, action), n)| (action.clone(), *n))
            .collect()
    }

    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }

    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().values().sum()
    }

    pub fn get(&self, action: &str) -> u64 {
        self.counts
            .lock()
            .unwrap()
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
        self.by_account.lock().unwrap().clear();
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// SDK configuration acting inside `account` (moto keys state by the
/// account of the assumed role's credentials): assumes `seed` there.
pub async fn in_account(base: &aws_config::SdkConfig, account: &str) -> aws_config::SdkConfig {
    let out = aws_sdk_sts::Client::new(base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/seed"))
        .role_session_name("seed")
        .send()
        .await
        .expect("assume seed role");
    let c = out.credentials().expect("credentials");
    let creds = aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "seed",
    );
    base.clone()
        .into_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
        .build()
}
