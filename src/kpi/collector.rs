//! A prometheus [`Collector`] over the latest [`Snapshot`]: it only reads
//! memory, so rendering never touches the store or an upstream.

use super::Snapshot;
use super::TIME_BUCKETS;
use crate::model::{Resolution, Validity};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

const NOTE: &str = " Values come from the latest poll, not the scrape.";

/// The `confirmed_by` values of SPEC §3.
pub const CONFIRMED_BY: [&str; 6] = [
    "aws",
    "gcp",
    "azure",
    "vault",
    "kubernetes",
    "validity_check",
];

/// What the collector renders: the snapshot, plus which sources are
/// configured (for zero-valued series) and which are stale (dropped).
#[derive(Debug, Clone, Default)]
pub struct KpiView {
    pub snapshot: Arc<Snapshot>,
    /// (name, source_type) of the configured, enabled sources.
    pub sources: Vec<(String, String)>,
    /// What each configured inventory source reports, for zero-valued
    /// series before its first poll.
    pub inventories: Vec<(String, crate::model::InventoryKinds)>,
    pub stale: BTreeSet<String>,
    /// Wall clock for `nhi_store_history_seconds`.
    pub now: i64,
}

#[derive(Debug, Default)]
pub struct KpiCollector {
    view: Arc<RwLock<KpiView>>,
    descs: Vec<Desc>,
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
}

const FAMILIES: &[Family] = &[
    Family { name: "nhi_findings_open", help: "Open findings reported by each scanner.", kind: MetricType::GAUGE },
    Family { name: "nhi_exposed_secrets", help: "Distinct open exposures across all scanners, deduplicated by secret.", kind: MetricType::GAUGE },
    Family { name: "nhi_secrets_in_code_delta", help: "Open exposures now minus at the window's start; negative is better.", kind: MetricType::GAUGE },
    Family { name: "nhi_residual_exposures", help: "Exposures whose findings are all closed but whose secret still works.", kind: MetricType::GAUGE },
    Family { name: "nhi_exposure_oldest_open_age_seconds", help: "Age of the oldest open exposure.", kind: MetricType::GAUGE },
    Family { name: "nhi_findings_detected_total", help: "Findings seen for the first time (activity).", kind: MetricType::COUNTER },
    Family { name: "nhi_findings_closed_total", help: "Findings closed (activity).", kind: MetricType::COUNTER },
    Family { name: "nhi_exposures_revoked_total", help: "Exposures confirmed unusable (outcome).", kind: MetricType::COUNTER },
    Family { name: "nhi_exposures_reopened_total", help: "Revoked exposures seen usable again: a newer live validity statement, or a linked credential active again.", kind: MetricType::COUNTER },
    Family { name: "nhi_time_to_revoke_seconds", help: "First detection (or the latest re-exposure) to confirmed revocation, once per revocation of an exposure.", kind: MetricType::HISTOGRAM },
    Family { name: "nhi_time_to_close_seconds", help: "Detection to closure of a finding (the activity twin of time to revoke).", kind: MetricType::HISTOGRAM },
    Family { name: "nhi_identities", help: "Non-human identities inventoried.", kind: MetricType::GAUGE },
    Family { name: "nhi_human_identities", help: "Human principals seen (for the NHI:human ratio).", kind: MetricType::GAUGE },
    Family { name: "nhi_standing_privileged_identities", help: "Non-human identities holding admin-equivalent rights permanently.", kind: MetricType::GAUGE },
    Family { name: "nhi_unused_identities", help: "Non-human identities not used within policy.unused_after.", kind: MetricType::GAUGE },
    Family { name: "nhi_identities_owned", help: "Non-human identities with a known owning team.", kind: MetricType::GAUGE },
    Family { name: "nhi_identities_governed", help: "Non-human identities that are owned, used within policy.unused_after, and whose active credentials are all within policy.max_credential_age or rotated automatically.", kind: MetricType::GAUGE },
    Family { name: "nhi_credentials", help: "Credentials by state.", kind: MetricType::GAUGE },
    Family { name: "nhi_long_lived_credentials", help: "Active credentials not rotated within policy.max_credential_age.", kind: MetricType::GAUGE },
    Family { name: "nhi_credentials_rotation_enabled", help: "Active credentials with automatic rotation.", kind: MetricType::GAUGE },
    Family { name: "nhi_credentials_by_age", help: "Active credentials by time since last rotation.", kind: MetricType::GAUGE },
    Family { name: "nhi_credential_oldest_age_seconds", help: "Time since last rotation of the oldest active credential.", kind: MetricType::GAUGE },
    Family { name: "nhi_closure_ratio", help: "Findings closed in the window divided by findings open at its start plus detected in it.", kind: MetricType::GAUGE },
    Family { name: "nhi_exposure_reduction_ratio", help: "Exposures confirmed revoked in the window divided by exposures open at its start plus opened in it.", kind: MetricType::GAUGE },
    Family { name: "nhi_time_to_revoke_median_seconds", help: "Exact median time to revoke of the exposures revoked in the window.", kind: MetricType::GAUGE },
    Family { name: "nhi_posture_score", help: "Posture score 0..1 per dimension (exposure, privilege, hygiene, governance, overall).", kind: MetricType::GAUGE },
    Family { name: "nhi_posture_score_change", help: "Posture score now minus at the window's start.", kind: MetricType::GAUGE },
    Family { name: "nhi_residual_exposure_oldest_age_seconds", help: "Time since the oldest residual exposure had all its findings closed while its secret still works.", kind: MetricType::GAUGE },
    Family { name: "nhi_exposure_revocation_idle_seconds", help: "Time since the latest confirmed revocation of an exposure, or since the store's first successful poll when none was revoked since.", kind: MetricType::GAUGE },
    Family { name: "nhi_closure_ratio_previous", help: "nhi_closure_ratio of the window before the current one; absent until the store's history covers it.", kind: MetricType::GAUGE },
    Family { name: "nhi_exposure_reduction_ratio_previous", help: "nhi_exposure_reduction_ratio of the window before the current one; absent until the store's history covers it.", kind: MetricType::GAUGE },
    Family { name: "nhi_time_to_revoke_median_previous_seconds", help: "nhi_time_to_revoke_median_seconds of the window before the current one; absent until the store's history covers it or when nothing was revoked in it.", kind: MetricType::GAUGE },
    Family { name: "nhi_standing_privileged_identities_change", help: "Standing privileged NHIs of the source now minus at the window's start (or at the source's first poll).", kind: MetricType::GAUGE },
    Family { name: "nhi_store_history_seconds", help: "Time covered by the store's history: since its first successful poll, or since an earlier detection time a source dated (GitHub/GitLab alerts); windows longer than this are computed over the history there is.", kind: MetricType::GAUGE },
];

pub(crate) fn help_of(name: &str) -> String {
    let f = FAMILIES
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.help)
        .unwrap_or("");
    format!("{f}{NOTE}")
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.to_string());
            l
        })
        .collect()
}

fn gauge(pairs: &[(&str, &str)], v: f64) -> proto::Metric {
    let mut g = proto::Gauge::default();
    g.set_value(v);
    let mut m = proto::Metric::default();
    m.set_label(labels(pairs));
    m.set_gauge(g);
    m
}

fn counter(pairs: &[(&str, &str)], v: f64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(v);
    let mut m = proto::Metric::default();
    m.set_label(labels(pairs));
    m.set_counter(c);
    m
}

fn histogram(pairs: &[(&str, &str)], buckets: &[u64], sum: f64, count: u64) -> proto::Metric {
    let mut h = proto::Histogram::default();
    let mut cum = 0u64;
    let mut out = Vec::with_capacity(TIME_BUCKETS.len());
    for (i, bound) in TIME_BUCKETS.iter().enumerate() {
        cum += buckets.get(i).copied().unwrap_or(0);
        let mut b = proto::Bucket::default();
        b.set_upper_bound(*bound);
        b.set_cumulative_count(cum);
        out.push(b);
    }
    h.set_bucket(out);
    h.set_sample_sum(sum);
    h.set_sample_count(count);
    let mut m = proto::Metric::default();
    m.set_label(labels(pairs));
    m.set_histogram(h);
    m
}

impl KpiCollector {
    pub fn new(view: Arc<RwLock<KpiView>>) -> Self {
        let descs = FAMILIES
            .iter()
            .filter_map(|f| {
                Desc::new(f.name.into(), help_of(f.name), vec![], Default::default()).ok()
            })
            .collect();
        Self { view, descs }
    }

    pub fn families(view: &KpiView) -> Vec<MetricFamily> {
        let s = &view.snapshot;
        let live: BTreeSet<&str> = view
            .sources
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !view.stale.contains(*n))
            .collect();
        let mut fams: BTreeMap<&'static str, Vec<proto::Metric>> = BTreeMap::new();
        let mut push = |name: &'static str, m: proto::Metric| fams.entry(name).or_default().push(m);

        for ((source, t, v), n) in &s.findings_open {
            if live.contains(source.as_str()) {
                push(
                    "nhi_findings_open",
                    gauge(
                        &[("source", source), ("secret_type", t), ("validity", v)],
                        *n as f64,
                    ),
                );
            }
        }
        for v in Validity::ALL {
            let n = s.exposed_secrets.get(v.as_str()).copied().unwrap_or(0);
            push(
                "nhi_exposed_secrets",
                gauge(&[("validity", v.as_str())], n as f64),
            );
        }
        for (v, age) in &s.oldest_open_age {
            push(
                "nhi_exposure_oldest_open_age_seconds",
                gauge(&[("validity", v)], *age),
            );
        }
        push(
            "nhi_residual_exposures",
            gauge(&[], s.residual_exposures as f64),
        );
        if let Some(age) = s.residual_oldest_age {
            push("nhi_residual_exposure_oldest_age_seconds", gauge(&[], age));
        }
        if let Some(idle) = s.revocation_idle {
            push("nhi_exposure_revocation_idle_seconds", gauge(&[], idle));
        }

        // Counters: stored values, plus zeros for the label sets a dashboard
        // needs from the start (configured sources x resolutions, confirmed_by).
        let mut counters: BTreeMap<(String, Vec<(String, String)>), f64> = BTreeMap::new();
        for (name, l, v) in &s.counters {
            counters.insert((name.clone(), l.clone()), *v);
        }
        for (src, _) in &view.sources {
            for r in Resolution::ALL {
                let key = (
                    "nhi_findings_closed_total".to_string(),
                    vec![
                        ("resolution".into(), r.as_str().into()),
                        ("source".into(), src.clone()),
                    ],
                );
                counters.entry(key).or_insert(0.0);
            }
        }
        for c in CONFIRMED_BY {
            counters
                .entry((
                    "nhi_exposures_revoked_total".into(),
                    vec![("confirmed_by".into(), c.into())],
                ))
                .or_insert(0.0);
        }
        counters
            .entry(("nhi_exposures_reopened_total".into(), vec![]))
            .or_insert(0.0);
        for ((name, l), v) in &counters {
            let fam = match name.as_str() {
                "nhi_findings_detected_total" => "nhi_findings_detected_total",
                "nhi_findings_closed_total" => "nhi_findings_closed_total",
                "nhi_exposures_revoked_total" => "nhi_exposures_revoked_total",
                "nhi_exposures_reopened_total" => "nhi_exposures_reopened_total",
                _ => continue,
            };
            // Per-source series of stale or removed sources are dropped.
            if let Some((_, src)) = l.iter().find(|(k, _)| k == "source") {
                if !live.contains(src.as_str()) {
                    continue;
                }
            }
            let pairs: Vec<(&str, &str)> =
                l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            push(fam, counter(&pairs, *v));
        }

        type HistKey = (String, Vec<(String, String)>);
        let mut hists: BTreeMap<HistKey, (Vec<u64>, f64, u64)> = BTreeMap::new();
        for (name, l, h) in &s.histograms {
            hists.insert(
                (name.clone(), l.clone()),
                (h.buckets.clone(), h.sum, h.count),
            );
        }
        let zero = || (vec![0; TIME_BUCKETS.len()], 0.0, 0);
        for c in CONFIRMED_BY {
            hists
                .entry((
                    "nhi_time_to_revoke_seconds".into(),
                    vec![("confirmed_by".into(), c.into())],
                ))
                .or_insert_with(zero);
        }
        for (src, _) in &view.sources {
            hists
                .entry((
                    "nhi_time_to_close_seconds".into(),
                    vec![("source".into(), src.clone())],
                ))
                .or_insert_with(zero);
        }
        for ((name, l), (b, sum, count)) in &hists {
            let fam = match name.as_str() {
                "nhi_time_to_revoke_seconds" => "nhi_time_to_revoke_seconds",
                "nhi_time_to_close_seconds" => "nhi_time_to_close_seconds",
                _ => continue,
            };
            if let Some((_, src)) = l.iter().find(|(k, _)| k == "source") {
                if !live.contains(src.as_str()) {
                    continue;
                }
            }
            let pairs: Vec<(&str, &str)> =
                l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            push(fam, histogram(&pairs, b, *sum, *count));
        }

        Self::inventory(view, &live, &mut push);

        for w in &s.windows {
            let win = [("window", w.label.as_str())];
            push(
                "nhi_secrets_in_code_delta",
                gauge(&win, w.secrets_in_code_delta),
            );
            if let Some(r) = w.closure_ratio {
                push("nhi_closure_ratio", gauge(&win, r));
            }
            if let Some(r) = w.exposure_reduction_ratio {
                push("nhi_exposure_reduction_ratio", gauge(&win, r));
            }
            if let Some(m) = w.time_to_revoke_median {
                push("nhi_time_to_revoke_median_seconds", gauge(&win, m));
            }
            if let Some(p) = &w.previous {
                if let Some(r) = p.closure_ratio {
                    push("nhi_closure_ratio_previous", gauge(&win, r));
                }
                if let Some(r) = p.exposure_reduction_ratio {
                    push("nhi_exposure_reduction_ratio_previous", gauge(&win, r));
                }
                if let Some(m) = p.time_to_revoke_median {
                    push("nhi_time_to_revoke_median_previous_seconds", gauge(&win, m));
                }
            }
            for (source, d) in &w.standing_privileged_change {
                if live.contains(source.as_str()) {
                    push(
                        "nhi_standing_privileged_identities_change",
                        gauge(&[("source", source), ("window", &w.label)], *d),
                    );
                }
            }
            for (dim, d) in &w.posture_change {
                push(
                    "nhi_posture_score_change",
                    gauge(&[("dimension", dim), ("window", &w.label)], *d),
                );
            }
        }
        for (dim, v) in &s.posture {
            push("nhi_posture_score", gauge(&[("dimension", dim)], *v));
        }
        let history = s
            .history_start
            .map(|f| (view.now - f).max(0) as f64)
            .unwrap_or(0.0);
        push("nhi_store_history_seconds", gauge(&[], history));

        let mut out = Vec::new();
        for f in FAMILIES {
            if let Some(metrics) = fams.remove(f.name) {
                let mut mf = MetricFamily::default();
                mf.set_name(f.name.to_string());
                mf.set_help(help_of(f.name));
                mf.set_field_type(f.kind);
                mf.set_metric(metrics);
                out.push(mf);
            }
        }
        out
    }
}

/// A zero-valued entry for each of `kinds` of `source` that has no series
/// yet (under any team).
fn zero_fill<V: Default>(
    map: &mut BTreeMap<super::inventory::KindKey, V>,
    source: &str,
    provider: &str,
    kinds: &[&str],
) {
    for k in kinds {
        let present = map
            .keys()
            .any(|x| x.0 == source && x.1 == provider && x.2 == *k);
        if !present {
            let key = (
                source.into(),
                provider.into(),
                k.to_string(),
                String::new(),
                String::new(),
            );
            map.insert(key, V::default());
        }
    }
}

impl KpiCollector {
    fn inventory(
        view: &KpiView,
        live: &BTreeSet<&str>,
        push: &mut impl FnMut(&'static str, proto::Metric),
    ) {
        use super::inventory::AGE_BANDS;
        let inv = &view.snapshot.inventory;
        let team_on = inv.team_labels;
        let scope_on = inv.scope_labels;
        let mut ids = inv.identities.clone();
        let mut creds = inv.credentials.clone();
        let mut humans = inv.humans.clone();
        for (src, k) in &view.inventories {
            zero_fill(&mut ids, src, k.provider, k.identity_kinds);
            zero_fill(&mut creds, src, k.provider, k.credential_kinds);
            humans
                .entry((src.clone(), k.provider.to_string()))
                .or_insert(0);
        }
        // The opt-in labels after the fixed ones.
        let opt_in = |v: &mut Vec<(String, String)>, team: &str, scope: &str| {
            if team_on {
                v.push(("team".to_string(), team.to_string()));
            }
            if scope_on {
                v.push(("scope".to_string(), scope.to_string()));
            }
        };
        let pairs = |source: &str, provider: &str, kind: &str, team: &str, scope: &str| {
            let mut v = vec![
                ("source".to_string(), source.to_string()),
                ("provider".to_string(), provider.to_string()),
                ("kind".to_string(), kind.to_string()),
            ];
            opt_in(&mut v, team, scope);
            v
        };
        let g = |l: &[(String, String)], v: f64| {
            let p: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            gauge(&p, v)
        };
        for ((source, provider, kind, team, scope), c) in &ids {
            if !live.contains(source.as_str()) {
                continue;
            }
            let l = pairs(source, provider, kind, team, scope);
            push("nhi_identities", g(&l, c.total as f64));
            push(
                "nhi_standing_privileged_identities",
                g(&l, c.standing_privileged as f64),
            );
            push("nhi_unused_identities", g(&l, c.unused as f64));
            push("nhi_identities_owned", g(&l, c.owned as f64));
            push("nhi_identities_governed", g(&l, c.governed as f64));
        }
        for ((source, provider), n) in &humans {
            if live.contains(source.as_str()) {
                push(
                    "nhi_human_identities",
                    gauge(&[("source", source), ("provider", provider)], *n as f64),
                );
            }
        }
        // Age bands aggregate kinds: (source, provider, team, scope) → counts.
        let mut bands: BTreeMap<(&str, &str, &str, &str), [u64; 4]> = BTreeMap::new();
        for ((source, provider, kind, team, scope), c) in &creds {
            if !live.contains(source.as_str()) {
                continue;
            }
            let l = pairs(source, provider, kind, team, scope);
            for (state, n) in [("active", c.active), ("inactive", c.inactive)] {
                let mut ls = l.clone();
                ls.push(("state".to_string(), state.to_string()));
                push("nhi_credentials", g(&ls, n as f64));
            }
            push("nhi_long_lived_credentials", g(&l, c.long_lived as f64));
            push(
                "nhi_credentials_rotation_enabled",
                g(&l, c.rotation_enabled as f64),
            );
            if let Some(age) = c.oldest_age {
                push("nhi_credential_oldest_age_seconds", g(&l, age));
            }
            let b = bands.entry((source, provider, team, scope)).or_default();
            for (i, n) in c.bands.iter().enumerate() {
                b[i] += n;
            }
        }
        for ((source, provider, team, scope), counts) in bands {
            for (i, (band, _)) in AGE_BANDS.iter().enumerate() {
                let mut l = vec![
                    ("source".to_string(), source.to_string()),
                    ("provider".to_string(), provider.to_string()),
                    ("band".to_string(), band.to_string()),
                ];
                opt_in(&mut l, team, scope);
                push("nhi_credentials_by_age", g(&l, counts[i] as f64));
            }
        }
    }
}

impl Collector for KpiCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        Self::families(&view)
    }
}
