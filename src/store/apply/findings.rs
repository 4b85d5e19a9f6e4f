//! Finding transitions of one target's complete scan: new, reopened,
//! validity changed, closed, disappeared.

use super::*;

impl PollApplier<'_> {
    pub fn target(&mut self, scan: &TargetScan) -> Result<(), StoreError> {
        self.stats.targets += 1;
        let target_id: i64 = self.tx.query_row(
            "INSERT INTO targets(source, target, fingerprint, scanned_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source, target) DO UPDATE SET fingerprint = excluded.fingerprint, scanned_at = excluded.scanned_at
             RETURNING id",
            params![self.source, scan.target, scan.fingerprint, scan.scanned_at],
            |r| r.get(0),
        )?;
        let mut existing: HashMap<String, Existing> = HashMap::new();
        {
            let mut stmt = self.tx.prepare_cached(
                "SELECT id, scanner_id, exposure_id, open, validity, detected_at, secret_type, validity_at, closed_at
                 FROM findings WHERE target_id = ?1",
            )?;
            let mut rows = stmt.query([target_id])?;
            while let Some(r) = rows.next()? {
                existing.insert(
                    r.get(1)?,
                    Existing {
                        id: r.get(0)?,
                        exposure_id: r.get(2)?,
                        open: r.get::<_, i64>(3)? != 0,
                        validity: r.get(4)?,
                        detected_at: r.get(5)?,
                        secret_type: r.get(6)?,
                        validity_at: r.get(7)?,
                        closed_at: r.get(8)?,
                    },
                );
            }
        }
        let at = scan.scanned_at;
        let mut seen: HashSet<&str> = HashSet::with_capacity(scan.findings.len());
        let mut dirty: HashSet<i64> = HashSet::new();
        for f in &scan.findings {
            if !seen.insert(f.scanner_id.as_str()) {
                continue; // a scanner repeating the same finding id
            }
            match existing.get(&f.scanner_id) {
                Some(e) => self.update_existing(e, f, at, &mut dirty)?,
                None => self.insert_new(target_id, &scan.target, f, at, &mut dirty)?,
            }
        }
        self.flush_findings()?;
        for (sid, e) in &existing {
            if e.open && !seen.contains(sid.as_str()) {
                self.close(e, Resolution::Disappeared, at)?;
                dirty.insert(e.exposure_id);
            }
        }
        for eid in dirty {
            self.recompute_exposure(eid, at)?;
        }
        Ok(())
    }

    pub(super) fn close(
        &mut self,
        e: &Existing,
        resolution: Resolution,
        at: i64,
    ) -> Result<(), StoreError> {
        let closed_at = at.max(e.detected_at);
        self.tx
            .prepare_cached(
                "UPDATE findings SET open = 0, resolution = ?2, closed_at = ?3 WHERE id = ?1",
            )?
            .execute(params![e.id, resolution.as_str(), closed_at])?;
        // The exposure's open count is recounted by `recompute_exposure`,
        // which every caller runs before the target's scan ends.
        self.tick(kind::FINDING_CLOSED, closed_at, 1);
        self.adjust_open(&e.secret_type, &e.validity, -1);
        let source = self.source.clone();
        self.count(
            FINDING_CLOSED,
            &[("source", &source), ("resolution", resolution.as_str())],
            1.0,
        );
        self.observe(
            TIME_TO_CLOSE,
            &[("source", &source)],
            closed_at - e.detected_at,
        );
        self.stats.findings_closed += 1;
        Ok(())
    }

    pub(super) fn update_existing(
        &mut self,
        e: &Existing,
        f: &ObservedFinding,
        at: i64,
        dirty: &mut HashSet<i64>,
    ) -> Result<(), StoreError> {
        let validity = f.validity.as_str();
        let validity_at = statement_time(f, at);
        if validity != e.validity || validity_at != e.validity_at {
            self.tx
                .prepare_cached(
                    "UPDATE findings SET validity = ?2, validity_at = ?3 WHERE id = ?1",
                )?
                .execute(params![e.id, validity, validity_at])?;
            dirty.insert(e.exposure_id);
            if e.open && validity != e.validity {
                self.adjust_open(&e.secret_type, &e.validity, -1);
                self.adjust_open(&e.secret_type, validity, 1);
            }
        }
        // From here on the finding carries its new validity.
        let e = &Existing {
            validity: validity.to_string(),
            validity_at,
            secret_type: e.secret_type.clone(),
            ..*e
        };
        match (&f.closed, e.open) {
            (None, true) => {}
            (None, false) => {
                // Back in the newer scan (or reopened upstream).
                self.tx
                    .prepare_cached(
                        "UPDATE findings SET open = 1, resolution = NULL, closed_at = NULL WHERE id = ?1",
                    )?
                    .execute([e.id])?;
                if let Some(t) = e.closed_at {
                    self.tick(kind::FINDING_CLOSED, t, -1);
                }
                // The exposure is recounted (dirty) below.
                self.adjust_open(&e.secret_type, &e.validity, 1);
                self.stats.findings_reopened += 1;
                dirty.insert(e.exposure_id);
            }
            (Some((resolution, closed_at)), true) => {
                self.close(e, *resolution, closed_at.unwrap_or(at))?;
                dirty.insert(e.exposure_id);
            }
            (Some(_), false) => {}
        }
        Ok(())
    }

    pub(super) fn insert_new(
        &mut self,
        target_id: i64,
        target: &str,
        f: &ObservedFinding,
        at: i64,
        dirty: &mut HashSet<i64>,
    ) -> Result<(), StoreError> {
        let type_name = match self.normalised.get(&f.secret_type) {
            Some(n) => n.clone(),
            None => {
                let n = normalise_secret_type(&f.secret_type);
                self.normalised.insert(f.secret_type.clone(), n.clone());
                n
            }
        };
        let type_label = self.type_label(&type_name)?;
        let detected_at = f.detected_at.unwrap_or(at).min(self.now.max(at));
        if f.detected_at.is_some() {
            self.dated_from = Some(self.dated_from.map_or(detected_at, |d| d.min(detected_at)));
        }
        let open = f.closed.is_none();
        let key = self.exposure_key(target, f);
        // Most keys are new: one statement inserts, and only a conflict
        // costs a second lookup.
        const INSERT_EXPOSURE: &str =
            "INSERT INTO exposures(key, secret_type, first_detected_at, open_findings, validity)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(key) DO NOTHING";
        let row = params![
            key,
            type_name,
            detected_at,
            open as i64,
            f.validity.as_str()
        ];
        let inserted = if self.tx.is_postgres() {
            // The id in the same round trip.
            self.tx
                .prepare_cached(&format!("{INSERT_EXPOSURE} RETURNING id"))?
                .query_row(row, |r| r.get(0))
                .optional()?
        } else if self.tx.prepare_cached(INSERT_EXPOSURE)?.execute(row)? == 1 {
            // No RETURNING: SQLite materialises it in a temporary table
            // per row.
            Some(self.tx.last_insert_rowid()?)
        } else {
            None
        };
        let exposure_id = match inserted {
            Some(id) => {
                self.account_exposure(
                    None,
                    &ExposureTimes {
                        open,
                        validity: f.validity,
                        first_detected: detected_at,
                        closed: None,
                        revoked: None,
                    },
                );
                self.stats.exposures_new += 1;
                if !open || f.validity != Validity::Unknown {
                    dirty.insert(id);
                }
                id
            }
            None => {
                let (id, open_before, before): (i64, i64, ExposureTimes) = self
                    .tx
                    .prepare_cached(
                        "SELECT id, open_findings, validity, first_detected_at, closed_at, revoked_at
                         FROM exposures WHERE key = ?1",
                    )?
                    .query_row([&key], |r| {
                        let open: i64 = r.get(1)?;
                        Ok((
                            r.get(0)?,
                            open,
                            ExposureTimes {
                                open: open > 0,
                                validity: stored_validity(&r.get::<_, String>(2)?),
                                first_detected: r.get(3)?,
                                closed: r.get(4)?,
                                revoked: r.get(5)?,
                            },
                        ))
                    })?;
                let after = ExposureTimes {
                    open: before.open || open,
                    first_detected: before.first_detected.min(detected_at),
                    ..before.clone()
                };
                self.account_exposure(Some(&before), &after);
                self.tx
                    .prepare_cached(
                        "UPDATE exposures SET open_findings = open_findings + ?2,
                            first_detected_at = CASE WHEN ?3 < first_detected_at THEN ?3 ELSE first_detected_at END
                         WHERE id = ?1",
                    )?
                    .execute(params![id, open as i64, detected_at])?;
                // Another open finding of an open exposure, adding no validity
                // information, cannot change the exposure's state.
                // (A statement, even of the same validity, may be newer than
                // a revocation: a re-exposure.)
                let unchanged = open && open_before > 0 && f.validity == Validity::Unknown;
                if !unchanged {
                    dirty.insert(id);
                }
                id
            }
        };
        let (resolution, closed_at) = match f.closed {
            None => (None, None),
            Some((r, t)) => (Some(r.as_str()), Some(t.unwrap_or(at).max(detected_at))),
        };
        let loc = &f.location;
        // Written with the target's other new findings (`flush_findings`),
        // before anything reads them back.
        self.new_findings.push(NewFinding {
            target_id,
            scanner_key: scanner_key(&f.scanner_id).to_vec(),
            scanner_id: f.scanner_id.clone(),
            exposure_id,
            secret_type: type_name.clone(),
            repository: loc.repository.clone(),
            file: loc.file.clone(),
            line: loc.line,
            commit: loc.commit.clone(),
            detected_at,
            committed_at: f.committed_at,
            open: open as i64,
            resolution,
            closed_at,
            validity: f.validity.as_str(),
            validity_at: statement_time(f, at),
        });
        if self.new_findings.len() >= ROWS_PER_INSERT {
            self.flush_findings()?;
        }
        for link in &f.links {
            let n = self
                .tx
                .prepare_cached(
                    "INSERT INTO exposure_links(exposure_id, provider, credential_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![exposure_id, link.provider, link.id])?;
            if n > 0 {
                dirty.insert(exposure_id);
            }
        }
        if self.has_values && matches!(f.exposure, ExposureKey::Secret(_)) {
            // A vault value equal to the leaked secret (match_values).
            let n = self
                .tx
                .prepare_cached(
                    "INSERT INTO exposure_links(exposure_id, provider, credential_id)
                     SELECT CAST(?1 AS BIGINT), c.provider, c.ext_id FROM credential_values v
                       JOIN credentials c ON c.id = v.credential_id WHERE v.key = ?2
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![exposure_id, key])?;
            if n > 0 {
                dirty.insert(exposure_id);
            }
        }
        self.tick(kind::FINDING_DETECTED, detected_at, 1);
        if let Some(t) = closed_at {
            self.tick(kind::FINDING_CLOSED, t, 1);
        }
        *self.detected.entry(type_label).or_default() += 1;
        if open {
            self.adjust_open(&type_name, f.validity.as_str(), 1);
        }
        self.stats.findings_new += 1;
        if let (Some(r), Some(c)) = (f.closed.map(|c| c.0), closed_at) {
            let source = self.source.clone();
            self.count(
                FINDING_CLOSED,
                &[("source", &source), ("resolution", r.as_str())],
                1.0,
            );
            self.observe(TIME_TO_CLOSE, &[("source", &source)], c - detected_at);
            self.stats.findings_closed += 1;
        }
        Ok(())
    }
}

/// A new finding's row, written by [`PollApplier::flush_findings`].
pub(super) struct NewFinding {
    target_id: i64,
    scanner_key: Vec<u8>,
    scanner_id: String,
    exposure_id: i64,
    secret_type: String,
    repository: Option<String>,
    file: Option<String>,
    line: Option<i64>,
    commit: Option<String>,
    detected_at: i64,
    committed_at: Option<i64>,
    open: i64,
    resolution: Option<&'static str>,
    closed_at: Option<i64>,
    validity: &'static str,
    validity_at: Option<i64>,
}

impl PollApplier<'_> {
    /// Write the pending new findings, as few multi-row `INSERT`s.
    pub(super) fn flush_findings(&mut self) -> Result<(), StoreError> {
        let rows = std::mem::take(&mut self.new_findings);
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO findings(source, target_id, scanner_key, scanner_id, exposure_id, secret_type, repository,
                    file, line, commit_sha, detected_at, committed_at, open, resolution, closed_at, validity, validity_at)
                 VALUES {}",
                values_list(chunk.len(), 17)
            );
            let mut list: Vec<&dyn Param> = Vec::with_capacity(chunk.len() * 17);
            for r in chunk {
                list.extend_from_slice(&[
                    &self.source,
                    &r.target_id,
                    &r.scanner_key,
                    &r.scanner_id,
                    &r.exposure_id,
                    &r.secret_type,
                    &r.repository,
                    &r.file,
                    &r.line,
                    &r.commit,
                    &r.detected_at,
                    &r.committed_at,
                    &r.open,
                    &r.resolution,
                    &r.closed_at,
                    &r.validity,
                    &r.validity_at,
                ]);
            }
            self.tx.execute_rows(&sql, chunk.len(), &list)?;
        }
        Ok(())
    }
}

/// When the finding's validity statement was made: the scanner's own time,
/// else the scan's; `None` for `unknown` (no statement at all).
fn statement_time(f: &ObservedFinding, scanned_at: i64) -> Option<i64> {
    (f.validity != Validity::Unknown).then(|| f.validity_at.unwrap_or(scanned_at))
}
