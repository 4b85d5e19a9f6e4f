//! An exposure's state derived from its findings and its linked
//! credentials: open, confirmed revoked, residual, closed unverified.

use super::*;

impl PollApplier<'_> {
    /// Derive an exposure's state from its findings: open while any is open;
    /// revoked (confirmed) once a validity check reports it inactive;
    /// residual when all are closed but the secret is still live.
    pub(super) fn recompute_exposure(&mut self, id: i64, at: i64) -> Result<(), StoreError> {
        let (open, open_rank, all_rank, last_closed, first_detected, revoked_at): (
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            i64,
            Option<i64>,
        ) = self
            .tx
            .prepare_cached(
                "SELECT
                    (SELECT COUNT(*) FROM findings WHERE exposure_id = ?1 AND open = 1),
                    (SELECT MAX(CASE validity WHEN 'live' THEN 2 WHEN 'inactive' THEN 1 ELSE 0 END)
                       FROM findings WHERE exposure_id = ?1 AND open = 1),
                    (SELECT MAX(CASE validity WHEN 'live' THEN 2 WHEN 'inactive' THEN 1 ELSE 0 END)
                       FROM findings WHERE exposure_id = ?1),
                    (SELECT MAX(closed_at) FROM findings WHERE exposure_id = ?1),
                    e.first_detected_at, e.revoked_at
                 FROM exposures e WHERE e.id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
        let is_open = open > 0;
        let validity = validity_of_rank(if is_open { open_rank } else { all_rank }.unwrap_or(0));
        let closed_at = if is_open { None } else { last_closed };
        let mut revoked = revoked_at;
        let mut confirmed_by: Option<String> = None;
        if revoked.is_none() && validity == Validity::Inactive {
            let t = at.max(first_detected);
            revoked = Some(t);
            confirmed_by = Some("validity_check".into());
            self.count(EXPOSURE_REVOKED, &[("confirmed_by", "validity_check")], 1.0);
            self.observe(
                TIME_TO_REVOKE,
                &[("confirmed_by", "validity_check")],
                t - first_detected,
            );
            self.stats.exposures_revoked += 1;
        }
        // Linked credentials (AWS access key ids in the leak, vault values):
        // revoked once every linked credential the inventories know is
        // unusable; still working while any of them is usable.
        let mut credential_live = false;
        if revoked.is_none() {
            let linked = self.linked_credential_states(id, first_detected, at)?;
            if !linked.is_empty() {
                if linked.iter().any(|l| l.is_none()) {
                    credential_live = true;
                } else if let Some((t, provider)) = linked.into_iter().flatten().max() {
                    let t = t.max(first_detected);
                    revoked = Some(t);
                    self.count(EXPOSURE_REVOKED, &[("confirmed_by", &provider)], 1.0);
                    self.observe(
                        TIME_TO_REVOKE,
                        &[("confirmed_by", &provider)],
                        t - first_detected,
                    );
                    confirmed_by = Some(provider);
                    self.stats.exposures_revoked += 1;
                }
            }
        }
        let residual =
            !is_open && revoked.is_none() && (validity == Validity::Live || credential_live);
        self.tx
            .prepare_cached(
                "UPDATE exposures SET open_findings = ?2, validity = ?3, closed_at = ?4, revoked_at = ?5,
                    confirmed_by = COALESCE(?6, confirmed_by), residual = ?7 WHERE id = ?1",
            )?
            .execute(params![
                id,
                open,
                validity.as_str(),
                closed_at,
                revoked,
                confirmed_by,
                residual as i64
            ])?;
        Ok(())
    }

    /// For each inventoried credential linked to the exposure: `None` while
    /// usable, else when it became unusable and the `confirmed_by` value.
    #[allow(clippy::type_complexity)]
    pub(super) fn linked_credential_states(
        &mut self,
        exposure_id: i64,
        first_detected: i64,
        at: i64,
    ) -> Result<Vec<Option<(i64, String)>>, StoreError> {
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
            let unusable_at = if state != "active" {
                Some(changed_at)
            } else if let Some(x) = expires_at.filter(|x| *x <= at) {
                Some(x)
            } else if kind == "kv" {
                // A new version written after the leak, no longer holding the
                // leaked value (when values are matched), is a rotation.
                rotated_at.filter(|t| *t > first_detected && !(has_values && value_current))
            } else {
                None
            };
            out.push(unusable_at.map(|t| (t, confirmed_by)));
        }
        Ok(out)
    }
}
