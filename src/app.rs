//! The one shared state of the daemon: the loaded configuration and its
//! built sources, the store, the hasher, health metrics, the latest KPI
//! snapshot and its rendered exposition, and the source tasks. `main` only
//! wires this to the CLI.

use crate::config::{Config, ConfigError, Policy, SourceConfig, StoreBackend};
use crate::hashing::SecretHasher;
use crate::health::Health;
use crate::kpi::collector::{KpiCollector, KpiView};
use crate::kpi::{self, Snapshot};
use crate::poll::{self, PollHost, PollOutcome};
use crate::sources::registry::{self, Loaded};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use prometheus::{Encoder, Registry, TextEncoder};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::model::unix_now;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] crate::hashing::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the landing page and `/-/ready` know about a source.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    pub source_type: String,
    pub enabled: bool,
    pub polled: bool,
    pub up: bool,
    pub last_success: Option<i64>,
    /// Every error of the last poll: the poll's failure, or each input
    /// that could not be read (a report file, an AWS member account).
    pub last_errors: Vec<String>,
}

struct Task {
    cfg: SourceConfig,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

pub struct App {
    pub config_path: PathBuf,
    /// The configuration and its built sources, swapped as one on reload.
    loaded: RwLock<Loaded>,
    pub store: Arc<Store>,
    pub hasher: Arc<SecretHasher>,
    pub registry: Registry,
    pub health: Health,
    view: Arc<RwLock<KpiView>>,
    statuses: RwLock<BTreeMap<String, SourceStatus>>,
    /// The exposition, plain and gzip-compressed (Prometheus asks for gzip).
    rendered: RwLock<(Bytes, Bytes)>,
    /// Wakes the KPI refresher after a poll.
    pub refresh: Notify,
    tasks: Mutex<HashMap<String, Task>>,
    pub shutdown: CancellationToken,
    /// Set on a PostgreSQL store: replicas share the sources.
    leases: Option<Arc<poll::Leases>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config_path", &self.config_path)
            .finish()
    }
}

impl App {
    /// Load the config, the hash key and the store. Nothing is polled yet.
    pub fn open(config_path: &Path) -> Result<Arc<App>, StartError> {
        Self::with_loaded(config_path, registry::load(config_path)?)
    }

    /// [`App::open`] with the configuration at `config_path` already
    /// loaded (for a caller that must look at it before the store opens).
    pub fn with_loaded(config_path: &Path, loaded: Loaded) -> Result<Arc<App>, StartError> {
        let cfg = loaded.config.clone();
        let key_path = cfg.state.hash_key_path();
        // The PostgreSQL URL holds its password: read here, never logged.
        // `location` names the store in errors: its file, or the URL's file.
        let (url, location) = match &cfg.state.backend {
            StoreBackend::Sqlite => (None, cfg.state.path.clone()),
            StoreBackend::Postgres { url_file } => (
                Some(
                    std::fs::read_to_string(url_file).map_err(|source| StoreError::UrlFile {
                        path: url_file.clone(),
                        source,
                    })?,
                ),
                url_file.clone(),
            ),
        };
        let hasher = match SecretHasher::load(&key_path)? {
            Some(h) => h,
            None => {
                // A store written under a key that is now missing would
                // refuse a new one: say so before writing anything.
                let stored = match &url {
                    None => Store::stored_key_id(&cfg.state.path)?,
                    Some(url) => Store::stored_key_id_postgres(url)?,
                };
                if let Some(stored) = stored {
                    return Err(StoreError::KeyMissing {
                        path: location,
                        key: key_path,
                        stored,
                    }
                    .into());
                }
                let h = SecretHasher::generate();
                h.write_new(&key_path)?;
                h
            }
        };
        let store = match &url {
            None => Store::open(&cfg.state.path, &hasher.key_id())?,
            Some(url) => Store::open_postgres(url, &hasher.key_id())?,
        };
        let registry = Registry::new();
        let health = Health::new(&registry);
        let view = Arc::new(RwLock::new(KpiView::default()));
        registry
            .register(Box::new(KpiCollector::new(view.clone())))
            .expect("KPI collector registers once");
        health.reload_ok.set(1.0);
        health.reload_ts.set(unix_now() as f64);
        let store = Arc::new(store);
        let leases = store
            .is_postgres()
            .then(|| Arc::new(poll::Leases::new(store.clone())));
        let app = Arc::new(App {
            config_path: config_path.to_path_buf(),
            loaded: RwLock::new(loaded),
            store,
            hasher: Arc::new(hasher),
            registry,
            health,
            view,
            statuses: RwLock::new(BTreeMap::new()),
            rendered: RwLock::new((Bytes::new(), Bytes::new())),
            refresh: Notify::new(),
            tasks: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            leases,
        });
        app.sync_sources()?;
        Ok(app)
    }

    pub fn config(&self) -> Arc<Config> {
        self.loaded().config
    }

    /// The built source of an enabled source, by name.
    pub fn source(&self, name: &str) -> Option<Arc<dyn crate::sources::Source>> {
        self.loaded().sources.get(name).cloned()
    }

    fn loaded(&self) -> Loaded {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn statuses(&self) -> BTreeMap<String, SourceStatus> {
        self.statuses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ready once every enabled source has been polled once.
    pub fn ready(&self) -> bool {
        self.statuses()
            .values()
            .filter(|s| s.enabled)
            .all(|s| s.polled)
    }

    /// The latest rendered exposition (what `/metrics` serves).
    pub fn exposition(&self) -> Bytes {
        self.rendered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The same exposition, gzip-compressed once per render.
    pub fn exposition_gzip(&self) -> Bytes {
        self.rendered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Make statuses and health series match the configured sources.
    fn sync_sources(&self) -> Result<(), StoreError> {
        let cfg = self.config();
        let persisted = self.store.last_successes()?;
        let mut statuses = self.statuses.write().unwrap_or_else(|p| p.into_inner());
        let wanted: BTreeMap<&str, &SourceConfig> =
            cfg.sources.iter().map(|s| (s.name.as_str(), s)).collect();
        statuses.retain(|name, st| {
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|s| s.type_name() == st.source_type && s.enabled);
            if !keep {
                self.health.remove_source(name, &st.source_type);
            }
            keep
        });
        for s in cfg.sources.iter().filter(|s| s.enabled) {
            self.health
                .interval
                .with_label_values(&[s.name.as_str(), s.type_name()])
                .set(s.interval.as_secs_f64());
            statuses.entry(s.name.clone()).or_insert_with(|| {
                let last = persisted.get(&s.name).copied();
                self.health.add_source(&s.name, s.type_name(), last);
                SourceStatus {
                    source_type: s.type_name().to_string(),
                    enabled: true,
                    last_success: last,
                    ..Default::default()
                }
            });
        }
        Ok(())
    }

    /// Other replicas' polls (a shared store). A source's latest success
    /// is the store's, whoever polled it, so that it is not stale here;
    /// and a source another replica polled (the store has its success) or
    /// polls (it holds the source's lease) counts as polled for readiness,
    /// so that every replica gets ready.
    fn polled_elsewhere(
        &self,
        persisted: &BTreeMap<String, i64>,
        leased: &BTreeSet<String>,
        health: &BTreeMap<String, bool>,
    ) {
        let mut statuses = self.statuses.write().unwrap_or_else(|p| p.into_inner());
        for (name, st) in statuses.iter_mut() {
            st.polled |=
                leased.contains(name) || health.contains_key(name) || persisted.contains_key(name);
            // The latest poll's outcome, whichever replica made it: every
            // replica exports the same `nhi_source_up`.
            if let Some(&up) = health.get(name) {
                st.up = up;
                self.health
                    .up
                    .with_label_values(&[name.as_str(), st.source_type.as_str()])
                    .set(if up { 1.0 } else { 0.0 });
            }
            let Some(&t) = persisted.get(name) else {
                continue;
            };
            if st.last_success.is_none_or(|l| l < t) {
                st.last_success = Some(t);
                self.health
                    .last_success
                    .with_label_values(&[name.as_str(), st.source_type.as_str()])
                    .set(t as f64);
            }
        }
    }

    /// Record a poll's outcome in the health metrics and statuses.
    pub fn record_poll(&self, cfg: &SourceConfig, out: &PollOutcome) {
        let kind = cfg.type_name();
        let labels = [cfg.name.as_str(), kind];
        self.health
            .poll_duration
            .with_label_values(&labels)
            .observe(out.duration.as_secs_f64());
        for e in &out.errors {
            self.health
                .errors
                .with_label_values(&[cfg.name.as_str(), kind, e.reason.as_str()])
                .inc();
        }
        self.health
            .up
            .with_label_values(&labels)
            .set(if out.ok() { 1.0 } else { 0.0 });
        if let Some(t) = out.applied_at {
            self.health
                .last_success
                .with_label_values(&labels)
                .set(t as f64);
        }
        let mut statuses = self.statuses.write().unwrap_or_else(|p| p.into_inner());
        if let Some(st) = statuses.get_mut(&cfg.name) {
            st.polled = true;
            st.up = out.ok();
            if out.applied_at.is_some() {
                st.last_success = out.applied_at;
            }
            st.last_errors = out.errors.iter().map(|e| e.to_string()).collect();
        }
    }

    /// Recompute the KPI snapshot from the store and record its history.
    /// Runs on a blocking thread; never at scrape time.
    pub fn recompute(&self, now: i64) -> Result<(), StoreError> {
        let snap = self.compute_and_record(now)?;
        self.set_snapshot(snap);
        Ok(())
    }

    /// Compute the KPI snapshot as of `now` and record its history point
    /// at `now` (what [`App::recompute`] and a backfilled scan do).
    pub fn compute_and_record(&self, now: i64) -> Result<Snapshot, StoreError> {
        let cfg = self.config();
        let mut reader = self.store.reader()?;
        let sources: BTreeSet<String> = cfg
            .sources
            .iter()
            .filter(|s| s.enabled)
            .map(|s| s.name.clone())
            .collect();
        let snap = {
            // One snapshot of the store: a poll committing meanwhile is
            // either wholly in these numbers or wholly out.
            let read = reader.snapshot()?;
            kpi::compute_with(&read, &cfg.policy, &cfg.labels, Some(&sources), now)?
        };
        {
            let mut writer = self.store.writer();
            kpi::record_history(&mut writer, &snap, &cfg.policy)?;
        }
        Ok(snap)
    }

    /// The latest KPI snapshot (what `/metrics` and the landing page show).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot
            .clone()
    }

    fn set_snapshot(&self, snap: Snapshot) {
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        v.snapshot = Arc::new(snap);
    }

    /// Rebuild the exposition: staleness, history age and health included.
    pub fn render(&self) {
        let now = unix_now();
        let cfg = self.config();
        let statuses = self.statuses();
        {
            let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
            v.now = now;
            v.sources = cfg
                .sources
                .iter()
                .filter(|s| s.enabled)
                .map(|s| (s.name.clone(), s.type_name().to_string()))
                .collect();
            v.inventories = cfg
                .sources
                .iter()
                .filter(|s| s.enabled)
                .filter_map(|s| Some((s.name.clone(), s.spec.inventory()?)))
                .collect();
            v.stale = cfg
                .sources
                .iter()
                .filter(|s| s.enabled)
                .filter(|s| {
                    let last = statuses.get(&s.name).and_then(|st| st.last_success);
                    match last {
                        None => true,
                        Some(t) => now - t > s.stale_after(&cfg.policy).as_secs() as i64,
                    }
                })
                .map(|s| s.name.clone())
                .collect::<BTreeSet<_>>();
        }
        let families = self.registry.gather();
        let mut buf = Vec::with_capacity(64 * 1024);
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
            return;
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(buf.len() / 4),
            flate2::Compression::fast(),
        );
        let gzipped = std::io::Write::write_all(&mut gz, &buf).and_then(|_| gz.finish());
        let gzipped = match gzipped {
            Ok(g) => Bytes::from(g),
            Err(e) => {
                tracing::error!(error = %e, "cannot compress metrics; serving them uncompressed");
                Bytes::new()
            }
        };
        *self.rendered.write().unwrap_or_else(|p| p.into_inner()) = (Bytes::from(buf), gzipped);
    }

    /// Start (or restart after a reload) the task of every enabled source
    /// whose configuration changed; stop the removed ones.
    pub fn start_sources(self: &Arc<Self>) {
        let loaded = self.loaded();
        let cfg = loaded.config.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let wanted: HashMap<&str, &SourceConfig> = cfg
            .sources
            .iter()
            .filter(|s| s.enabled)
            .map(|s| (s.name.as_str(), s))
            .collect();
        if let Some(l) = &self.leases {
            l.set_sources(wanted.len());
        }
        tasks.retain(|name, t| {
            let keep = wanted.get(name.as_str()).is_some_and(|c| **c == t.cfg);
            if !keep {
                t.cancel.cancel();
                tracing::info!(source = %name, "source stopped");
            }
            keep
        });
        for (name, c) in wanted {
            if tasks.contains_key(name) {
                continue;
            }
            let Some(source) = loaded.sources.get(name).cloned() else {
                continue;
            };
            let cancel = self.shutdown.child_token();
            let host: Arc<dyn PollHost> = self.clone();
            let handle = tokio::spawn(poll::run(host, c.clone(), source, cancel.clone()));
            tasks.insert(
                name.to_string(),
                Task {
                    cfg: c.clone(),
                    cancel,
                    handle,
                },
            );
        }
    }

    /// Load the configuration file again and build its sources, without
    /// swapping anything in: the first half of an atomic reload.
    pub fn prepare_reload(&self) -> Result<Loaded, ConfigError> {
        registry::load(&self.config_path)
    }

    /// Swap in a prepared configuration and its sources at once; restart
    /// the sources whose settings changed. State is kept.
    pub fn apply_reload(self: &Arc<Self>, mut new: Loaded) {
        let old = self.config();
        if new.config.state != old.state {
            tracing::warn!(
                "state (backend, path, url_file, hash_key_file) changes need a restart; keeping the open store"
            );
            let mut cfg = (*new.config).clone();
            cfg.state = old.state.clone();
            new.config = Arc::new(cfg);
        }
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = new;
        if let Err(e) = self.sync_sources() {
            tracing::error!(error = %e, "cannot read source state from the store");
        }
        self.start_sources();
        self.health.reload_ok.set(1.0);
        self.health.reload_ts.set(unix_now() as f64);
        tracing::info!("configuration reloaded");
        self.refresh.notify_one();
        self.render();
    }

    /// A reload failed: the previous configuration keeps running.
    pub fn reload_failed(&self, error: &dyn std::fmt::Display) {
        self.health.reload_ok.set(0.0);
        tracing::error!(error = %error, "configuration reload failed; keeping the previous configuration");
        self.render();
    }

    /// Keep the snapshot fresh: recompute after polls. Renders after each
    /// recompute; [`App::run_renderer`] re-renders on a tick of its own, so
    /// health and staleness move on time even while a recompute waits.
    pub async fn run_refresher(self: Arc<Self>) {
        // On a store shared by replicas, the others' polls change the
        // numbers too: look every 5 s (one small query) whether any
        // source's latest poll moved, and recompute then.
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = None;
        loop {
            let changed = async {
                loop {
                    tick.tick().await;
                    if !self.store.is_postgres() {
                        continue;
                    }
                    let store = self.store.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        Ok::<_, StoreError>((
                            store.last_successes()?,
                            store.leased_sources()?,
                            store.source_health()?,
                        ))
                    });
                    if let Ok(Ok((now, leased, health))) = read.await {
                        self.polled_elsewhere(&now, &leased, &health);
                        if seen
                            .replace(now.clone())
                            .is_some_and(|before| before != now)
                        {
                            return;
                        }
                    }
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = changed => {}
                _ = self.refresh.notified() => {}
            }
            let app = self.clone();
            let res = tokio::task::spawn_blocking(move || app.recompute(unix_now())).await;
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "KPI computation failed; serving the previous snapshot")
                }
                Err(e) => tracing::error!(error = %e, "KPI computation panicked"),
            }
            self.render();
            // Fold the WAL into the database file once the new
            // snapshot is served (off the poll's critical path).
            let store = self.store.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.checkpoint()).await {
                tracing::warn!(error = %e, "WAL checkpoint failed; retried after the next poll");
            }
        }
    }

    /// Re-render the exposition every `every`: poll health is recorded as
    /// polls end, and staleness and history age move with the clock.
    pub async fn run_renderer(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => self.render(),
            }
        }
    }

    /// Stop polling and wait (bounded) for in-flight transactions to end.
    pub async fn stop(&self, grace: Duration) {
        self.shutdown.cancel();
        let handles: Vec<JoinHandle<()>> = {
            let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.drain().map(|(_, t)| t.handle).collect()
        };
        let wait = async {
            for h in handles {
                let _ = h.await;
            }
        };
        if tokio::time::timeout(grace, wait).await.is_err() {
            tracing::warn!("some polls did not stop in time; their transactions roll back");
        }
    }
}

impl PollHost for App {
    fn store(&self) -> Arc<Store> {
        self.store.clone()
    }
    fn hasher(&self) -> Arc<SecretHasher> {
        self.hasher.clone()
    }
    fn policy(&self) -> Arc<Policy> {
        Arc::new(self.config().policy.clone())
    }
    fn polled(&self, cfg: &SourceConfig, outcome: &PollOutcome) {
        self.record_poll(cfg, outcome);
        self.refresh.notify_one();
    }

    fn leases(&self) -> Option<Arc<poll::Leases>> {
        self.leases.clone()
    }
}
