//! A scope's complete inventory: identities and credentials upserted,
//! absent ones deleted, leaks linked to credential values.

use super::*;

impl PollApplier<'_> {
    pub(super) fn team_rank(&mut self, team: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO teams(name, rank) SELECT ?1, COALESCE(MAX(rank), 0) + 1 FROM teams WHERE true
                 ON CONFLICT DO NOTHING",
            )?
            .execute([team])?;
        Ok(())
    }

    pub(super) fn scope_rank(&mut self, scope: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO scopes(name, rank) SELECT ?1, COALESCE(MAX(rank), 0) + 1 FROM scopes WHERE true
                 ON CONFLICT DO NOTHING",
            )?
            .execute([scope])?;
        Ok(())
    }

    /// Apply the complete inventory of one scope of this source: upsert
    /// what changed, delete identities and mark credentials `deleted` that
    /// are absent, link leaks to credential values, and re-derive the
    /// exposures whose linked credentials changed.
    pub fn inventory(&mut self, inv: &InventoryScan) -> Result<(), StoreError> {
        self.stats.inventories += 1;
        let at = inv.observed_at;
        let source = self.source.clone();
        // In order of appearance: the first teams seen keep their label.
        let mut teams: Vec<&str> = Vec::new();
        let mut team_seen: HashSet<&str> = HashSet::new();
        // Likewise the scopes (accounts), for the `scope` label.
        let mut scopes: Vec<&str> = Vec::new();
        let mut scope_seen: HashSet<&str> = HashSet::new();

        let existing: HashMap<String, (i64, Vec<u8>)> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT ext_id, id, digest FROM identities WHERE source = ?1 AND scope = ?2",
            )?;
            let rows = stmt.query_map(params![source, inv.scope], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut seen: HashSet<&str> = HashSet::with_capacity(inv.identities.len());
        // New or changed identities, written ROWS_PER_INSERT to a statement
        // (nothing reads them back during the apply).
        let mut changed_identities = Vec::new();
        for i in &inv.identities {
            if !seen.insert(i.id.as_str()) {
                continue;
            }
            if let Some(t) = i.team.as_deref().filter(|t| team_seen.insert(t)) {
                teams.push(t);
            }
            if !i.account.is_empty() && scope_seen.insert(&i.account) {
                scopes.push(&i.account);
            }
            let digest = digest_of(i);
            if existing.get(&i.id).is_some_and(|(_, d)| *d == digest) {
                continue;
            }
            self.stats.identities_changed += 1;
            let flags = [i.usage_tracked as i64, i.standing as i64, i.human as i64];
            changed_identities.push((i, digest, flags));
        }
        for chunk in changed_identities.chunks(ROWS_PER_INSERT) {
            let mut list: Vec<&dyn Param> = Vec::with_capacity(chunk.len() * 15);
            for (i, digest, [usage_tracked, standing, human]) in chunk {
                list.extend_from_slice(&[
                    &source,
                    &inv.scope,
                    &i.id,
                    &i.provider,
                    &i.account,
                    &i.kind,
                    &i.name,
                    &i.created_at,
                    &i.last_used_at,
                    usage_tracked,
                    &i.team,
                    &i.privileged,
                    standing,
                    human,
                    digest,
                ]);
            }
            let sql = format!(
                "INSERT INTO identities(source, scope, ext_id, provider, account, kind, name, created_at,
                    last_used_at, usage_tracked, team, privileged, standing, human, digest)
                 VALUES {}
                 ON CONFLICT(source, ext_id) DO UPDATE SET scope = excluded.scope,
                    provider = excluded.provider, account = excluded.account, kind = excluded.kind,
                    name = excluded.name, created_at = excluded.created_at,
                    last_used_at = CASE WHEN identities.last_used_at IS NULL
                            OR excluded.last_used_at > identities.last_used_at
                        THEN excluded.last_used_at ELSE identities.last_used_at END,
                    usage_tracked = excluded.usage_tracked, team = excluded.team,
                    privileged = excluded.privileged, standing = excluded.standing,
                    human = excluded.human, digest = excluded.digest",
                values_list(chunk.len(), 15)
            );
            self.tx.execute_rows(&sql, chunk.len(), &list)?;
        }
        for (ext, (id, _)) in &existing {
            if !seen.contains(ext.as_str()) {
                self.stats.identities_changed += 1;
                self.tx
                    .prepare_cached("DELETE FROM identities WHERE id = ?1")?
                    .execute([id])?;
            }
        }
        let known: HashMap<String, KnownCred> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT ext_id, id, digest, state FROM credentials WHERE source = ?1 AND scope = ?2",
            )?;
            let rows = stmt.query_map(params![source, inv.scope], |r| {
                Ok((
                    r.get(0)?,
                    KnownCred {
                        id: r.get(1)?,
                        digest: r.get(2)?,
                        state: r.get(3)?,
                    },
                ))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut changed: Vec<(&str, &str)> = Vec::new();
        let mut new_credentials = Vec::new();
        let mut seen: HashSet<&str> = HashSet::with_capacity(inv.credentials.len());
        for c in &inv.credentials {
            if !seen.insert(c.id.as_str()) {
                continue;
            }
            if let Some(t) = c.team.as_deref().filter(|t| team_seen.insert(t)) {
                teams.push(t);
            }
            if !c.account.is_empty() && scope_seen.insert(&c.account) {
                scopes.push(&c.account);
            }
            let digest = digest_of(c);
            let state = c.state.as_str();
            let old = known.get(&c.id);
            if old.is_some_and(|k| k.digest == digest && k.state == state) {
                continue;
            }
            self.stats.credentials_changed += 1;
            // New, or changed (state, rotation, values, links): the exposures
            // linked to it are re-derived below.
            changed.push((c.provider, c.id.as_str()));
            if old.is_none() && c.value_hashes.is_empty() {
                // Nothing below needs its row id: written with the others.
                new_credentials.push((c, digest, state, c.rotation_enabled as i64));
                for alias in &c.aliases {
                    self.link_alias(c, alias)?;
                }
                continue;
            }
            let state_changed = old.is_none_or(|k| k.state != state);
            let cred_id = self.upsert_credential(&inv.scope, c, &digest, at, state_changed)?;
            if old.is_some() {
                self.tx
                    .prepare_cached("DELETE FROM credential_values WHERE credential_id = ?1")?
                    .execute([cred_id])?;
            }
            for alias in &c.aliases {
                self.link_alias(c, alias)?;
            }
            for h in &c.value_hashes {
                let key = secret_key(h);
                self.tx
                    .prepare_cached(
                        "INSERT INTO credential_values(key, credential_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![key, cred_id])?;
                self.has_values = true;
                // Link a leak of this value (exposures hold the same key).
                self.tx
                    .prepare_cached(
                        "INSERT INTO exposure_links(exposure_id, provider, credential_id)
                         SELECT id, ?2, ?3 FROM exposures WHERE key = ?1 ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![key, c.provider, c.id])?;
            }
        }
        for chunk in new_credentials.chunks(ROWS_PER_INSERT) {
            let mut list: Vec<&dyn Param> = Vec::with_capacity(chunk.len() * 16);
            for (c, digest, state, rotation_enabled) in chunk {
                list.extend_from_slice(&[
                    &self.source,
                    &inv.scope,
                    &c.id,
                    &c.provider,
                    &c.kind,
                    &c.identity,
                    &c.team,
                    &c.created_at,
                    &c.last_rotated_at,
                    &c.expires_at,
                    &c.last_used_at,
                    state,
                    &at,
                    rotation_enabled,
                    digest,
                    &c.account,
                ]);
            }
            // A new row, or one moving in from another scope: its state
            // changed now either way.
            let sql = format!(
                "INSERT INTO credentials(source, scope, ext_id, provider, kind, identity, team, created_at,
                    last_rotated_at, expires_at, last_used_at, state, state_changed_at, rotation_enabled, digest,
                    account)
                 VALUES {}
                 ON CONFLICT(source, ext_id) DO UPDATE SET {CREDENTIAL_UPDATE},
                    state_changed_at = excluded.state_changed_at",
                values_list(chunk.len(), 16)
            );
            self.tx.execute_rows(&sql, chunk.len(), &list)?;
        }
        let mut gone: Vec<(String, String)> = Vec::new();
        for (ext, k) in &known {
            if k.state != "deleted" && !seen.contains(ext.as_str()) {
                self.stats.credentials_changed += 1;
                let provider: String = self
                    .tx
                    .prepare_cached(
                        "UPDATE credentials SET state = 'deleted', state_changed_at = ?2 WHERE id = ?1 RETURNING provider",
                    )?
                    .query_row(params![k.id, at], |r| r.get(0))?;
                self.tx
                    .prepare_cached("DELETE FROM credential_values WHERE credential_id = ?1")?
                    .execute([k.id])?;
                gone.push((provider, ext.clone()));
            }
        }
        for t in teams {
            self.team_rank(t)?;
        }
        for a in scopes {
            self.scope_rank(a)?;
        }
        let mut dirty: HashSet<i64> = HashSet::new();
        {
            let mut stmt = self.tx.prepare_cached(
                "SELECT exposure_id FROM exposure_links WHERE provider = ?1 AND credential_id = ?2",
            )?;
            for (p, c) in changed
                .iter()
                .copied()
                .chain(gone.iter().map(|(p, c)| (p.as_str(), c.as_str())))
            {
                let rows = stmt.query_map(params![p, c], |r| r.get::<_, i64>(0))?;
                for r in rows {
                    dirty.insert(r?);
                }
            }
        }
        for eid in dirty {
            self.recompute_exposure(eid, at)?;
        }
        self.tx
            .prepare_cached(
                "DELETE FROM credentials WHERE source = ?1 AND scope = ?2 AND state = 'deleted'
                   AND state_changed_at < ?3
                   AND NOT EXISTS (SELECT 1 FROM exposure_links l
                                   WHERE l.provider = credentials.provider AND l.credential_id = credentials.ext_id)",
            )?
            .execute(params![source, inv.scope, at - DELETED_CREDENTIAL_RETENTION])?;
        Ok(())
    }

    pub(super) fn upsert_credential(
        &mut self,
        scope: &str,
        c: &ObservedCredential,
        digest: &[u8],
        at: i64,
        state_changed: bool,
    ) -> Result<i64, StoreError> {
        let id = self
            .tx
            .prepare_cached(&format!(
                "INSERT INTO credentials(source, scope, ext_id, provider, kind, identity, team, created_at,
                    last_rotated_at, expires_at, last_used_at, state, state_changed_at, rotation_enabled, digest,
                    account)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?17)
                 ON CONFLICT(source, ext_id) DO UPDATE SET {CREDENTIAL_UPDATE},
                    state_changed_at = CASE WHEN ?16 THEN excluded.state_changed_at ELSE credentials.state_changed_at END
                 RETURNING id"
            ))?
            .query_row(
                params![
                    self.source,
                    scope,
                    c.id,
                    c.provider,
                    c.kind,
                    c.identity,
                    c.team,
                    c.created_at,
                    c.last_rotated_at,
                    c.expires_at,
                    c.last_used_at,
                    c.state.as_str(),
                    at,
                    c.rotation_enabled as i64,
                    digest,
                    state_changed,
                    c.account,
                ],
                |r| r.get(0),
            )?;
        Ok(id)
    }

    /// A leak that named credential `c` by `alias` is linked to it (the
    /// exposures linked to it are re-derived at the end of the inventory).
    fn link_alias(&mut self, c: &ObservedCredential, alias: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO exposure_links(exposure_id, provider, credential_id)
                 SELECT exposure_id, provider, ?3 FROM exposure_links
                 WHERE provider = ?1 AND credential_id = ?2 ON CONFLICT DO NOTHING",
            )?
            .execute(params![c.provider, alias, c.id])?;
        Ok(())
    }

    /// Retire every stored inventory scope of this source that is not in
    /// `keep`: an account that left the organization, a region or service
    /// no longer configured. Applied as an empty complete inventory of that
    /// scope, so its credentials are kept as deleted (the evidence of a
    /// revocation) and the exposures linked to them are re-derived.
    pub fn retire_scopes(&mut self, keep: &[String]) -> Result<(), StoreError> {
        let stored: Vec<String> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT scope FROM identities WHERE source = ?1
                 UNION SELECT scope FROM credentials WHERE source = ?1 AND state != 'deleted'",
            )?;
            let rows = stmt.query_map([&self.source], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for scope in stored.into_iter().filter(|s| !keep.contains(s)) {
            tracing::info!(source = %self.source, scope = %scope, "inventory scope retired: no longer listed by the source");
            self.inventory(&InventoryScan {
                scope,
                observed_at: self.now,
                identities: Vec::new(),
                credentials: Vec::new(),
            })?;
        }
        Ok(())
    }
}

/// The columns an upsert of a credential sets, but its state change time.
const CREDENTIAL_UPDATE: &str = "scope = excluded.scope,
    provider = excluded.provider, kind = excluded.kind, identity = excluded.identity,
    account = excluded.account,
    team = excluded.team, created_at = excluded.created_at,
    last_rotated_at = excluded.last_rotated_at, expires_at = excluded.expires_at,
    last_used_at = excluded.last_used_at, state = excluded.state,
    rotation_enabled = excluded.rotation_enabled, digest = excluded.digest";
