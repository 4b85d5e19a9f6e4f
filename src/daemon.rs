//! The three ways to run: `--config.check`, `--once`, and the daemon.

use crate::app::{unix_now, App, StartError};
use crate::cli::Cli;
use crate::poll;
use crate::server::{self, ReloadFn, Server};
use crate::sources::registry;
use crate::webconfig::{WebConfig, WebConfigError};
use std::io::Write;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// `--config.check`: validate without contacting anything. Prints `OK` or
/// every error with its key path.
pub fn check_config(cli: &Cli) -> bool {
    let mut ok = true;
    // Builds every source too (CA files included); contacts nothing.
    match registry::load(&cli.config_file) {
        Ok(_) => {}
        Err(e) => {
            eprintln!("{e}");
            ok = false;
        }
    }
    if let Some(w) = &cli.web_config_file {
        if let Err(e) = WebConfig::load(w) {
            eprintln!("{e}");
            ok = false;
        }
    }
    if ok {
        println!("OK");
    }
    ok
}

async fn initial_snapshot(app: &Arc<App>) {
    let a = app.clone();
    match tokio::task::spawn_blocking(move || a.recompute(unix_now())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "KPI computation failed"),
        Err(e) => tracing::error!(error = %e, "KPI computation panicked"),
    }
    app.render();
}

/// `--once`: backfill past scans, poll every enabled source once, apply,
/// print the exposition. Returns whether every source (and backfill)
/// succeeded.
pub async fn run_once(cli: &Cli) -> Result<bool, RunError> {
    let app = App::open(&cli.config_file)?;
    let backfilled = crate::backfill::before_first_polls(&app).await;
    let cfg = app.config();
    let mut set = tokio::task::JoinSet::new();
    for s in cfg.sources.iter().filter(|s| s.enabled) {
        let Some(source) = app.source(&s.name) else {
            continue;
        };
        let (app, s) = (app.clone(), s.clone());
        set.spawn(async move {
            let out =
                poll::poll_once(app.as_ref(), &s, source.as_ref(), &CancellationToken::new()).await;
            app.record_poll(&s, &out);
            out.ok()
        });
    }
    // A failed backfill is a failed poll of its source.
    let mut all_ok = backfilled;
    while let Some(r) = set.join_next().await {
        all_ok &= r.unwrap_or(false);
    }
    initial_snapshot(&app).await;
    let store = app.store.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.checkpoint()).await {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
    let body = app.exposition();
    let mut out = std::io::stdout().lock();
    out.write_all(&body)
        .and_then(|_| out.flush())
        .map_err(|e| RunError::Other(format!("cannot write to stdout: {e}")))?;
    Ok(all_ok)
}

/// The daemon: serve, poll, reload on SIGHUP / `POST /-/reload`, stop on
/// SIGTERM / SIGINT within 10 s.
pub async fn run_daemon(cli: &Cli) -> Result<(), RunError> {
    let app = App::open(&cli.config_file)?;
    let web = match &cli.web_config_file {
        Some(p) => WebConfig::load(p)?,
        None => WebConfig::plain(),
    };
    let web = Arc::new(RwLock::new(Arc::new(web)));
    let fd_limit = server::raise_fd_limit();
    let limits = server::Limits {
        header_read_timeout: cli.read_header_timeout,
        idle_timeout: cli.idle_timeout,
        max_connections: match cli.max_connections {
            0 => server::default_max_connections(fd_limit),
            n => n,
        },
        ..server::Limits::default()
    };
    tracing::info!(
        max_connections = limits.max_connections,
        fd_limit = fd_limit.unwrap_or(0),
        "HTTP connection limit"
    );
    let listener = tokio::net::TcpListener::bind(cli.listen_address)
        .await
        .map_err(|source| RunError::Listen {
            addr: cli.listen_address,
            source,
        })?;
    let reload: ReloadFn = {
        let app = app.clone();
        let web = web.clone();
        let web_file = cli.web_config_file.clone();
        // Build the whole new set (web config, configuration, sources with
        // their TLS clients), then swap it in at once; any failure keeps
        // everything that runs.
        Arc::new(move || {
            let new_web = web_file.as_deref().map(WebConfig::load).transpose();
            let new_cfg = app.prepare_reload();
            match (new_web, new_cfg) {
                (Ok(w), Ok(loaded)) => {
                    if let Some(w) = w {
                        *web.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(w);
                    }
                    // A source the reload starts gets its past first.
                    let failed = crate::backfill::before_reload(&app, &loaded.config);
                    app.apply_reload(loaded);
                    for (cfg, out) in failed {
                        app.record_poll(&cfg, &out);
                    }
                    Ok(())
                }
                (w, c) => {
                    let errors: Vec<String> = [
                        w.err().map(|e| e.to_string()),
                        c.err().map(|e| e.to_string()),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    let msg = errors.join("\n");
                    app.reload_failed(&msg);
                    Err(msg)
                }
            }
        })
    };
    // Past scans first: the first snapshot already shows them.
    crate::backfill::before_first_polls(&app).await;
    initial_snapshot(&app).await;
    app.start_sources();
    tokio::spawn(app.clone().run_refresher());
    tokio::spawn(app.clone().run_renderer(Duration::from_secs(5)));
    let server_stop = CancellationToken::new();
    let srv = Server {
        app: app.clone(),
        telemetry_path: cli.telemetry_path.clone(),
        web,
        reload: reload.clone(),
        lifecycle: cli.enable_lifecycle,
        landing: Default::default(),
    };
    let server_task = tokio::spawn(server::serve_with(
        srv,
        listener,
        server_stop.clone(),
        limits,
    ));
    tracing::info!(address = %cli.listen_address, telemetry_path = %cli.telemetry_path, version = crate::health::VERSION, "nhi-exporter listening");

    wait_for_shutdown(reload).await;
    tracing::info!("shutting down");
    server_stop.cancel();
    app.stop(Duration::from_secs(7)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), server_task).await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(unix)]
async fn wait_for_shutdown(reload: ReloadFn) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                let r = reload.clone();
                let _ = tokio::task::spawn_blocking(move || r()).await;
            }
            _ = term.recv() => return,
            _ = int.recv() => return,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_shutdown(_reload: ReloadFn) {
    let _ = tokio::signal::ctrl_c().await;
}
