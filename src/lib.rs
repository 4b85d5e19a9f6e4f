//! nhi-exporter: outcome KPIs of non-human identity security for Prometheus.
//!
//! Layout: [`config`] (strict YAML, validation), [`sources`] (one module per
//! source type, plus the runner), [`store`] (SQLite lifecycle), [`kpi`]
//! (snapshot and collector), [`server`] (HTTP), [`landing`] (the `/` page),
//! [`app`] (shared state).

pub mod app;
pub mod backfill;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod hashing;
pub mod health;
pub mod kpi;
pub mod landing;
pub mod logging;
pub mod migrate;
pub mod model;
pub mod poll;
pub mod server;
pub mod sources;
pub mod store;
pub mod util;
pub mod web;
/// The former name of [`web`], kept for callers.
pub use web as webconfig;
