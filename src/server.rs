//! HTTP: `/` landing page (built in [`crate::landing`]), the bundled
//! dashboards at `/dashboards/<name>.json`, the telemetry path, `/-/healthy`, `/-/ready`,
//! `POST /-/reload`, with the exporter-toolkit web config (TLS, basic auth).
//! The telemetry path serves the pre-rendered exposition: a scrape never
//! touches the store or an upstream.

use crate::app::App;
use crate::landing;
use crate::webconfig::WebConfig;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub type ReloadFn = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct Server {
    pub app: Arc<App>,
    pub telemetry_path: String,
    pub web: Arc<RwLock<Arc<WebConfig>>>,
    pub reload: ReloadFn,
    /// `--web.enable-lifecycle`: `POST /-/reload` is served. Without it,
    /// anyone who reaches the port could make the exporter re-read its
    /// files, so it is refused (403), as Prometheus refuses it.
    pub lifecycle: bool,
    /// The landing page's trends, cached per snapshot.
    pub landing: Arc<landing::Cache>,
}

fn resp(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Whether `Accept-Encoding` allows gzip (and does not refuse it with q=0).
fn accepts_gzip(h: &hyper::HeaderMap) -> bool {
    h.get_all(hyper::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|part| {
                let mut it = part.trim().split(';');
                let coding = it.next().unwrap_or("").trim();
                let q_zero = it.any(|p| {
                    let p = p.trim().replace(' ', "");
                    p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
                });
                (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
            })
        })
}

impl Server {
    fn web(&self) -> Arc<WebConfig> {
        self.web.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let web = self.web();
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        if let Some(rl) = &web.rate_limit {
            if !rl.allow() {
                return resp(
                    StatusCode::TOO_MANY_REQUESTS,
                    "text/plain; charset=utf-8",
                    "Too Many Requests\n",
                );
            }
        }
        let mut r = if web.auth_required()
            && !{
                let web = web.clone();
                tokio::task::spawn_blocking(move || web.authorize(auth.as_deref()))
                    .await
                    .unwrap_or(false)
            } {
            let mut r = resp(
                StatusCode::UNAUTHORIZED,
                "text/plain; charset=utf-8",
                "Unauthorized\n",
            );
            r.headers_mut()
                .insert("WWW-Authenticate", HeaderValue::from_static("Basic"));
            r
        } else {
            self.route(req).await
        };
        for (k, v) in &web.headers {
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        if path == self.telemetry_path && get {
            let gzip = accepts_gzip(req.headers());
            let gz = if gzip {
                self.app.exposition_gzip()
            } else {
                Bytes::new()
            };
            if gzip && !gz.is_empty() {
                let mut r = resp(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    gz,
                );
                r.headers_mut().insert(
                    hyper::header::CONTENT_ENCODING,
                    HeaderValue::from_static("gzip"),
                );
                r.headers_mut().insert(
                    hyper::header::VARY,
                    HeaderValue::from_static("Accept-Encoding"),
                );
                return r;
            }
            return resp(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.app.exposition(),
            );
        }
        match (path, get, req.method() == Method::POST) {
            ("/-/healthy", true, _) => {
                resp(StatusCode::OK, "text/plain; charset=utf-8", "Healthy\n")
            }
            ("/-/ready", true, _) => {
                if self.app.ready() {
                    resp(StatusCode::OK, "text/plain; charset=utf-8", "Ready\n")
                } else {
                    let waiting: Vec<String> = self
                        .app
                        .statuses()
                        .into_iter()
                        .filter(|(_, s)| s.enabled && !s.polled)
                        .map(|(n, _)| n)
                        .collect();
                    resp(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain; charset=utf-8",
                        format!(
                            "Not ready: waiting for the first poll of {}\n",
                            waiting.join(", ")
                        ),
                    )
                }
            }
            ("/-/reload", _, _) if !self.lifecycle => resp(
                StatusCode::FORBIDDEN,
                "text/plain; charset=utf-8",
                "Lifecycle API is not enabled: start with --web.enable-lifecycle, or send SIGHUP\n",
            ),
            ("/-/reload", _, true) => {
                let reload = self.reload.clone();
                match tokio::task::spawn_blocking(move || reload()).await {
                    Ok(Ok(())) => resp(StatusCode::OK, "text/plain; charset=utf-8", "OK\n"),
                    Ok(Err(e)) => resp(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain; charset=utf-8",
                        format!("failed to reload config: {e}\n"),
                    ),
                    Err(_) => resp(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain; charset=utf-8",
                        "reload failed: internal error (see the log)\n",
                    ),
                }
            }
            ("/-/reload", _, false) => {
                let mut r = resp(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "text/plain; charset=utf-8",
                    "Only POST is allowed to reload the configuration\n",
                );
                r.headers_mut()
                    .insert("Allow", HeaderValue::from_static("POST"));
                r
            }
            ("/", true, _) => self.landing().await,
            (p, true, _) if p.starts_with("/dashboards/") => {
                match landing::dashboard(&p["/dashboards/".len()..]) {
                    Some(json) => resp(StatusCode::OK, "application/json", json),
                    None => resp(
                        StatusCode::NOT_FOUND,
                        "text/plain; charset=utf-8",
                        "Not Found\n",
                    ),
                }
            }
            _ => resp(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "Not Found\n",
            ),
        }
    }

    /// The landing page: the snapshot's KPIs, their trends (computed off
    /// the executor, once per snapshot), source health.
    async fn landing(&self) -> Response<Full<Bytes>> {
        let snap = self.app.snapshot();
        let trends = self.landing.get(&self.app, &snap).await;
        let statuses = self.app.statuses();
        let body = landing::page::render(&landing::page::Input {
            telemetry_path: &self.telemetry_path,
            snapshot: &snap,
            statuses: &statuses,
            trends: trends.as_deref(),
        });
        let mut r = resp(StatusCode::OK, "text/html; charset=utf-8", body);
        r.headers_mut().insert(
            hyper::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(landing::page::CSP),
        );
        r
    }
}

/// Bounds on what a client can hold: how long it may take to send a
/// request's headers, how long a connection may sit idle, how many
/// connections are served at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the start of a request's headers (or of the connection) to
    /// their end; a slowloris client is disconnected after this.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no byte read or
    /// written for this long is closed (idle keep-alive, half-sent
    /// requests included).
    pub idle_timeout: Duration,
    /// Connections served at once; further clients wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
    /// The TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit where allowed and
/// return the soft limit in force afterwards (None where unknown).
// `rlim_t` is u64 on Linux but not everywhere.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        let before = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                tracing::info!(
                    from = before as u64,
                    to = lim.rlim_max as u64,
                    "raised the soft file descriptor limit to the hard limit"
                );
                return Some(lim.rlim_max as u64);
            }
            tracing::warn!(
                soft = before as u64,
                hard = lim.rlim_max as u64,
                "cannot raise the soft file descriptor limit"
            );
        }
        Some(before as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The default connection limit for a soft fd limit: half of it (the rest
/// is for the store, report files, upstream connections), at most 512.
pub fn default_max_connections(soft_fd_limit: Option<u64>) -> usize {
    match soft_fd_limit {
        Some(n) => ((n / 2) as usize).clamp(1, 512),
        None => 512,
    }
}

/// Milliseconds since `base`, for the activity clock.
fn ms_since(base: Instant) -> u64 {
    base.elapsed().as_millis() as u64
}

/// Per-connection activity: the last time a byte moved, and how many
/// requests are being answered.
struct Activity {
    base: Instant,
    last: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }
    fn touch(&self) {
        self.last.store(ms_since(self.base), Ordering::Relaxed);
    }
    /// Resolves once the connection has been idle for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let idle_ms = idle.as_millis() as u64;
        loop {
            let quiet = ms_since(self.base).saturating_sub(self.last.load(Ordering::Relaxed));
            if self.in_flight.load(Ordering::Relaxed) == 0 && quiet >= idle_ms {
                return;
            }
            let wait = if self.in_flight.load(Ordering::Relaxed) > 0 {
                idle_ms
            } else {
                idle_ms - quiet
            };
            tokio::time::sleep(Duration::from_millis(wait.clamp(10, 1000))).await;
        }
    }
}

/// Counts a request as in flight while alive.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        a.touch();
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// An IO stream that records when bytes move.
struct Tracked<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serve until `shutdown` fires, then close connections gracefully, with
/// the default [`Limits`].
pub async fn serve(server: Server, listener: TcpListener, shutdown: CancellationToken) {
    serve_with(server, listener, shutdown, Limits::default()).await
}

/// Serve with explicit limits.
///
/// Request bodies: no endpoint reads one. hyper streams a body and buffers
/// none of it; a response to a request whose body is unread is sent with
/// `Connection: close` and the connection is closed, so a large body is
/// neither buffered nor drained.
pub async fn serve_with(
    server: Server,
    listener: TcpListener,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A connection slot first, then accept: over the limit, clients
        // wait in the kernel's backlog and cost the process no fd.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let tls = server.web().tls.clone();
        let activity = Activity::new();
        let svc_server = server.clone();
        let svc_activity = activity.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let s = svc_server.clone();
            let guard = InFlight::new(&svc_activity);
            async move {
                let has_body = !hyper::body::Body::is_end_stream(req.body());
                let mut r = s.handle(req).await;
                if has_body {
                    r.headers_mut()
                        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                }
                drop(guard);
                Ok::<_, std::convert::Infallible>(r)
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(64 * 1024);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tracked = Tracked {
                io: stream,
                activity: activity.clone(),
            };
            let work = async {
                match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(tracked), service);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(peer = %peer, error = %e, "connection error");
                        }
                    }
                    Some(cfg) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                        let tls_stream = match tokio::time::timeout(
                            limits.tls_handshake_timeout,
                            acceptor.accept(tracked),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(peer = %peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(peer = %peer, error = %e, "connection error");
                        }
                    }
                }
            };
            tokio::select! {
                _ = work => {}
                _ = activity.idle_for(limits.idle_timeout) => {
                    tracing::debug!(peer = %peer, "idle connection closed");
                }
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time");
    }
}
