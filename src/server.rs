//! HTTP: `/` landing page, the telemetry path, `/-/healthy`, `/-/ready`,
//! `POST /-/reload`, with the exporter-toolkit web config (TLS, basic auth).
//! The telemetry path serves the pre-rendered exposition: a scrape never
//! touches the store or an upstream.

use crate::app::App;
use crate::health::{REVISION, VERSION};
use crate::webconfig::WebConfig;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
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

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
                    Err(e) => resp(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain; charset=utf-8",
                        format!("reload failed: {e}\n"),
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
            ("/", true, _) => resp(StatusCode::OK, "text/html; charset=utf-8", self.landing()),
            _ => resp(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "Not Found\n",
            ),
        }
    }

    fn landing(&self) -> String {
        let mut rows = String::new();
        for (name, s) in self.app.statuses() {
            let health = if !s.polled {
                "pending"
            } else if s.up {
                "up"
            } else {
                "down"
            };
            let last = s
                .last_success
                .map(|t| {
                    time::OffsetDateTime::from_unix_timestamp(t)
                        .ok()
                        .and_then(|d| {
                            d.format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                        .unwrap_or_default()
                })
                .unwrap_or_else(|| "never".into());
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                html_escape(&name),
                html_escape(&s.source_type),
                health,
                html_escape(&last),
                s.last_errors
                    .iter()
                    .map(|e| html_escape(e))
                    .collect::<Vec<_>>()
                    .join("<br>\n"),
            ));
        }
        let tp = html_escape(&self.telemetry_path);
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>nhi-exporter</title></head><body>\n\
             <h1>nhi-exporter</h1>\n<p>Outcome KPIs of non-human identity security. Version {VERSION} (revision {REVISION}).</p>\n\
             <p><a href=\"{tp}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p>\n\
             <h2>Sources</h2>\n<table border=\"1\" cellpadding=\"4\">\n<tr><th>Source</th><th>Type</th><th>Status</th><th>Last success</th><th>Errors of the last poll</th></tr>\n{rows}</table>\n</body></html>\n"
        )
    }
}

/// Serve until `shutdown` fires, then close connections gracefully.
pub async fn serve(server: Server, listener: TcpListener, shutdown: CancellationToken) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
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
        let svc_server = server.clone();
        let service = hyper::service::service_fn(move |req| {
            let s = svc_server.clone();
            async move { Ok::<_, std::convert::Infallible>(s.handle(req).await) }
        });
        let builder = hyper::server::conn::http1::Builder::new();
        match tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = fut.await {
                        tracing::debug!(peer = %peer, error = %e, "connection error");
                    }
                });
            }
            Some(cfg) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls_stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
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
                });
            }
        }
    }
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time");
    }
}
