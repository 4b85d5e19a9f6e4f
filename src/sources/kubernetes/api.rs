//! The Kubernetes API through `kube`: the client of one poll, paged lists
//! and their errors as counted reasons.

use super::config::KubernetesConfig;
use crate::model::{ErrorReason, SourceError};
use kube::api::{ListParams, ObjectList};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::future::Future;
use std::time::{Duration, Instant};

/// Items asked per page. The API server may answer fewer (even none) with
/// a `continue` token: paging goes on until the token is empty.
pub const PAGE: u32 = 500;
/// Pages of one list beyond which the server is taken to loop.
const MAX_PAGES: u32 = 100_000;
/// Attempts of one page on 429, 5xx and connection errors.
const ATTEMPTS: u32 = 4;
/// Restarts of a list whose `continue` token expired (410 Gone).
const RESTARTS: u32 = 2;

/// The client of one poll: the kubeconfig (read again, so a rotated
/// credential is picked up) or the pod's service account.
pub async fn client(cfg: &KubernetesConfig, deadline: Instant) -> Result<Client, SourceError> {
    // kube's rustls connector takes the process-wide crypto provider; this
    // build links more than one, so none is chosen implicitly. ring is the
    // one the rest of the exporter uses. Installing twice is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = match &cfg.kubeconfig {
        Some(file) => {
            let kc = Kubeconfig::read_from(file).map_err(|e| {
                SourceError::new(
                    ErrorReason::Io,
                    format!("kubeconfig {}: {}", file.display(), first_line(&e)),
                )
            })?;
            let opts = KubeConfigOptions {
                context: cfg.context.clone(),
                ..Default::default()
            };
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| {
                    SourceError::new(ErrorReason::Auth, format!("kubeconfig: {}", first_line(&e)))
                })?
        }
        None => Config::incluster().map_err(|e| {
            SourceError::new(
                ErrorReason::Auth,
                format!("in-cluster config: {}", first_line(&e)),
            )
        })?,
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    config.read_timeout = Some(left);
    config.connect_timeout = Some(left.min(Duration::from_secs(10)));
    Client::try_from(config)
        .map_err(|e| SourceError::new(ErrorReason::Io, format!("client: {}", first_line(&e))))
}

/// The first line of an error's message: kube errors may append response
/// bodies on later lines, which are never logged.
fn first_line(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    let line = s.lines().next().unwrap_or("").to_string();
    line.chars().take(300).collect()
}

/// What went wrong with one list, as a counted reason. Only the status,
/// its reason word and the resource are reported: Kubernetes error messages
/// may quote object names, never secret material, but are kept short.
pub fn list_error(what: &str, e: &kube::Error, deadline: Instant) -> SourceError {
    match e {
        kube::Error::Api(s) => {
            let reason = match s.code {
                401 | 403 => ErrorReason::Auth,
                429 => ErrorReason::RateLimited,
                500..=599 => ErrorReason::Http5xx,
                _ => ErrorReason::Http4xx,
            };
            let word = if s.reason.is_empty() {
                "error"
            } else {
                s.reason.as_str()
            };
            SourceError::new(reason, format!("list {what}: HTTP {} {word}", s.code))
                .with_status(s.code)
        }
        kube::Error::SerdeError(e) => SourceError::new(
            ErrorReason::Parse,
            format!(
                "list {what}: malformed response at line {} column {}",
                e.line(),
                e.column()
            ),
        ),
        _ if Instant::now() >= deadline => {
            SourceError::new(ErrorReason::Timeout, format!("list {what}: out of time"))
        }
        other => SourceError::new(
            ErrorReason::Io,
            format!("list {what}: {}", first_line(other)),
        ),
    }
}

fn status_of(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Every item of a paged list, each mapped (and filtered) by `map` as its
/// page arrives, so a page of full objects is the most held at once.
/// `fetch` asks one page. A 410 (the `continue` token expired) restarts
/// the list; 429, 5xx and connection errors are retried within the
/// deadline. Returns the items and the number of requests made.
pub async fn list_all<T, U, F, Fut>(
    what: &str,
    base: &ListParams,
    deadline: Instant,
    fetch: F,
    mut map: impl FnMut(T) -> Option<U>,
) -> Result<(Vec<U>, u32), SourceError>
where
    T: Clone,
    F: Fn(ListParams) -> Fut,
    Fut: Future<Output = kube::Result<ObjectList<T>>>,
{
    let mut requests = 0u32;
    let mut restarts = 0u32;
    'list: loop {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut lp = base.clone().limit(PAGE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let mut attempt = 0;
            let page = loop {
                requests += 1;
                attempt += 1;
                match fetch(lp.clone()).await {
                    Ok(p) => break p,
                    Err(e) if status_of(&e) == Some(410) && restarts < RESTARTS => {
                        restarts += 1;
                        continue 'list;
                    }
                    Err(e) => {
                        let retry = match status_of(&e) {
                            Some(429) | Some(500..=599) => true,
                            Some(_) => false,
                            None => !matches!(e, kube::Error::SerdeError(_)),
                        };
                        let wait = Duration::from_millis(250 << attempt.min(5));
                        if !retry || attempt >= ATTEMPTS || Instant::now() + wait >= deadline {
                            return Err(list_error(what, &e, deadline));
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            };
            out.extend(page.items.into_iter().filter_map(&mut map));
            match page.metadata.continue_.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok((out, requests)),
            }
        }
        return Err(SourceError::new(
            ErrorReason::Http5xx,
            format!("list {what}: more than {MAX_PAGES} pages, the server keeps sending continue tokens"),
        ));
    }
}
