//! An exposure's state derived from its findings and its linked
//! credentials: open, confirmed revoked, residual, closed unverified.

use super::*;

impl PollApplier<'_> {
    /// Derive an exposure's state from its findings and linked credentials.
    ///
    /// - Open while any finding is open.
    /// - Its validity is its most recent validity statement across every
    ///   scanner, open or closed findings alike (SPEC §2); `unknown` when no
    ///   scanner made one.
    /// - Revoked (confirmed) when that statement is `inactive`
    ///   (`validity_check`, at the statement's time), or when every linked
    ///   credential the inventories know is unusable (at the latest time one
    ///   became so, `confirmed_by` its provider). The evidence must be newer
    ///   than the latest re-exposure.
    /// - Re-exposed (counted, no longer revoked) when, after a revocation, a
    ///   scanner says `live` or a linked credential is active again.
    /// - Residual when every finding is closed but the secret still works.
    pub(super) fn recompute_exposure(&mut self, id: i64, at: i64) -> Result<(), StoreError> {
        let row: ExposureRow = self
            .tx
            .prepare_cached(
                "SELECT
                    (SELECT COUNT(*) FROM findings WHERE exposure_id = ?1 AND open = 1),
                    (SELECT MAX(closed_at) FROM findings WHERE exposure_id = ?1),
                    e.first_detected_at, e.revoked_at, e.reopened_at, e.confirmed_by,
                    (SELECT validity || ' ' || validity_at FROM findings
                      WHERE exposure_id = ?1 AND validity != 'unknown' AND validity_at IS NOT NULL
                      ORDER BY validity_at DESC, validity = 'live' DESC LIMIT 1),
                    e.open_findings, e.validity, e.closed_at
                 FROM exposures e WHERE e.id = ?1",
            )?
            .query_row([id], |r| {
                Ok(ExposureRow {
                    open: r.get(0)?,
                    last_closed: r.get(1)?,
                    first_detected: r.get(2)?,
                    revoked_at: r.get(3)?,
                    reopened_at: r.get(4)?,
                    confirmed_by: r.get(5)?,
                    statement: r
                        .get::<_, Option<String>>(6)?
                        .and_then(|s| parse_statement(&s)),
                    before: ExposureTimes {
                        open: r.get::<_, i64>(7)? > 0,
                        validity: stored_validity(&r.get::<_, String>(8)?),
                        first_detected: r.get(2)?,
                        closed: r.get(9)?,
                        revoked: r.get(3)?,
                    },
                })
            })?;
        let ExposureRow {
            open,
            last_closed,
            first_detected,
            mut revoked_at,
            mut reopened_at,
            mut confirmed_by,
            statement,
            before,
        } = row;
        let is_open = open > 0;
        let validity = statement.map(|s| s.0).unwrap_or(Validity::Unknown);
        let closed_at = if is_open { None } else { last_closed };
        let linked = self.linked_credential_states(id, first_detected, at)?;

        // A revoked exposure seen usable again: a newer live statement, or a
        // linked credential made active after the revocation.
        if let Some(revoked) = revoked_at {
            let live_again = match statement {
                Some((Validity::Live, t)) if t > revoked => Some(t),
                _ => None,
            };
            let active_again = linked
                .iter()
                .filter_map(|l| l.active_since)
                .filter(|t| *t > revoked)
                .max();
            if let Some(t) = live_again.max(active_again) {
                revoked_at = None;
                confirmed_by = None;
                reopened_at = Some(t);
                self.count(EXPOSURE_REOPENED, &[], 1.0);
                self.stats.exposures_reopened += 1;
            }
        }
        // Evidence of a revocation must be newer than the latest re-exposure.
        let since = reopened_at.unwrap_or(first_detected);
        let after_reexposure = |t: i64| reopened_at.is_none_or(|r| t > r);
        if revoked_at.is_none() {
            let by_statement = match statement {
                Some((Validity::Inactive, t)) if after_reexposure(t) => {
                    Some((t, "validity_check".to_string()))
                }
                _ => None,
            };
            let by_credentials =
                if !linked.is_empty() && linked.iter().all(|l| l.unusable_at.is_some()) {
                    linked
                        .iter()
                        .filter_map(|l| l.unusable_at.map(|t| (t, l.provider.clone())))
                        .max()
                        .filter(|(t, _)| after_reexposure(*t))
                } else {
                    None
                };
            if let Some((t, by)) = by_statement.or(by_credentials) {
                let t = t.max(since);
                revoked_at = Some(t);
                self.count(EXPOSURE_REVOKED, &[("confirmed_by", &by)], 1.0);
                self.observe(TIME_TO_REVOKE, &[("confirmed_by", &by)], t - since);
                self.stats.exposures_revoked += 1;
                confirmed_by = Some(by);
            }
        }
        let credential_live = linked.iter().any(|l| l.unusable_at.is_none());
        let residual =
            !is_open && revoked_at.is_none() && (validity == Validity::Live || credential_live);
        self.tx
            .prepare_cached(
                "UPDATE exposures SET open_findings = ?2, validity = ?3, closed_at = ?4, revoked_at = ?5,
                    confirmed_by = ?6, residual = ?7, reopened_at = ?8 WHERE id = ?1",
            )?
            .execute(params![
                id,
                open,
                validity.as_str(),
                closed_at,
                revoked_at,
                confirmed_by,
                residual as i64,
                reopened_at
            ])?;
        self.account_exposure(
            Some(&before),
            &ExposureTimes {
                open: is_open,
                validity,
                first_detected,
                closed: closed_at,
                revoked: revoked_at,
            },
        );
        Ok(())
    }

    /// The state of each inventoried credential linked to the exposure.
    pub(super) fn linked_credential_states(
        &mut self,
        exposure_id: i64,
        first_detected: i64,
        at: i64,
    ) -> Result<Vec<LinkedState>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT c.provider, c.kind, c.state, c.state_changed_at, c.last_rotated_at, c.expires_at,
                    EXISTS(SELECT 1 FROM credential_values v WHERE v.credential_id = c.id AND v.key = e.key),
                    EXISTS(SELECT 1 FROM credential_values v WHERE v.credential_id = c.id)
             FROM exposure_links l
             JOIN exposures e ON e.id = l.exposure_id
             JOIN credentials c ON c.provider = l.provider AND c.ext_id = l.credential_id
             WHERE l.exposure_id = ?1",
        )?;
        let mut rows = stmt.query([exposure_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            // The provider that shows the credential unusable confirms the
            // revocation (`confirmed_by`); providers are a bounded set.
            let confirmed_by: String = r.get(0)?;
            let kind: String = r.get(1)?;
            let state: String = r.get(2)?;
            let changed_at: i64 = r.get(3)?;
            let rotated_at: Option<i64> = r.get(4)?;
            let expires_at: Option<i64> = r.get(5)?;
            let value_current: bool = r.get::<_, i64>(6)? != 0;
            let has_values: bool = r.get::<_, i64>(7)? != 0;
            let expired = expires_at.filter(|x| *x <= at);
            let unusable_at = if state != "active" {
                // Unusable since it was seen inactive, or since it expired
                // if that came first (an expired token reported inactive).
                Some(expired.map_or(changed_at, |x| x.min(changed_at)))
            } else if let Some(x) = expired {
                Some(x)
            } else if kind == "kv" || has_values {
                // A new version written after the leak, no longer holding the
                // leaked value (when values are matched), is a rotation: a
                // Vault KV secret, or any stored secret whose values are
                // matched (an Azure Key Vault secret under match_values).
                rotated_at.filter(|t| *t > first_detected && !(has_values && value_current))
            } else {
                None
            };
            out.push(LinkedState {
                unusable_at,
                active_since: (unusable_at.is_none() && state == "active").then_some(changed_at),
                provider: confirmed_by,
            });
        }
        Ok(out)
    }
}

/// What [`PollApplier::recompute_exposure`] reads of an exposure.
struct ExposureRow {
    open: i64,
    last_closed: Option<i64>,
    first_detected: i64,
    revoked_at: Option<i64>,
    reopened_at: Option<i64>,
    confirmed_by: Option<String>,
    /// The most recent validity statement: (validity, when).
    statement: Option<(Validity, i64)>,
    /// The row as stored before this recompute.
    before: ExposureTimes,
}

/// A credential linked to an exposure, as the inventories know it.
pub(super) struct LinkedState {
    /// When it became unusable (inactive, deleted, expired, rotated);
    /// `None` while it works.
    pub(super) unusable_at: Option<i64>,
    /// Since when it has been active, while it works and is active.
    pub(super) active_since: Option<i64>,
    /// Its provider: the `confirmed_by` of a revocation it confirms.
    pub(super) provider: String,
}

fn parse_statement(s: &str) -> Option<(Validity, i64)> {
    let (v, t) = s.split_once(' ')?;
    Some((Validity::parse(v)?, t.parse().ok()?))
}
