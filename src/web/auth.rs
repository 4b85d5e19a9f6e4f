//! `basic_auth_users`: bcrypt-checked credentials whose check takes the
//! same time whether or not the user exists, whatever the users' costs.
//!
//! Every uncached check runs exactly one bcrypt per distinct cost found
//! among the configured hashes: the user's own hash at its cost, a dummy
//! hash at each other cost; an unknown user gets dummies at every cost.
//! So a cost-4 user and a cost-12 user both take t(4) + t(12), as does
//! a name that does not exist. The price is that a failed check costs the
//! sum over the distinct costs: keep the users' costs equal (the usual
//! `htpasswd -nBC 10`). A verified result is cached (keyed by a SHA-256 of
//! user, password and hash) so a scrape with known-good credentials runs
//! no bcrypt at all.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// A syntactically valid bcrypt hash that matches no password anyone
/// would type; its cost field is replaced to make a dummy at any cost.
const DUMMY_TAIL: &str = "QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

#[derive(Default)]
pub(super) struct Users {
    users: HashMap<String, (String, u32)>,
    /// One dummy hash per distinct configured cost.
    dummies: BTreeMap<u32, String>,
    verified: Mutex<HashMap<[u8; 32], bool>>,
}

/// The cost of a `$2a$`/`$2b$`/`$2y$` hash, if it is one.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    if hash.len() != 60 || !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        return None;
    }
    if hash.as_bytes().get(6) != Some(&b'$') {
        return None;
    }
    let cost: u32 = hash.get(4..6)?.parse().ok()?;
    (4..=31).contains(&cost).then_some(cost)
}

impl Users {
    pub(super) fn new(raw: BTreeMap<String, String>) -> Result<Self, String> {
        let mut users = HashMap::new();
        let mut costs = BTreeSet::new();
        for (user, hash) in raw {
            let Some(cost) = bcrypt_cost(&hash) else {
                // The user name is a key; the hash is a value and is not shown.
                return Err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash; create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                ));
            };
            costs.insert(cost);
            users.insert(user, (hash, cost));
        }
        let dummies = costs
            .into_iter()
            .map(|c| (c, format!("$2y${c:02}${DUMMY_TAIL}")))
            .collect();
        Ok(Self {
            users,
            dummies,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.users.len()
    }

    pub(super) fn authorize(&self, header: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, pass)) = decoded.split_once(':') else {
            return false;
        };
        let own = self.users.get(user);
        let mut d = Sha256::new();
        d.update(user.as_bytes());
        d.update([0]);
        d.update(pass.as_bytes());
        d.update([0]);
        d.update(own.map(|(h, _)| h.as_str()).unwrap_or("").as_bytes());
        let key: [u8; 32] = d.finalize().into();
        if let Some(ok) = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return *ok;
        }
        let mut ok = false;
        for (cost, dummy) in &self.dummies {
            match own {
                Some((hash, c)) if c == cost => {
                    ok = bcrypt::verify(pass, hash).unwrap_or(false);
                }
                _ => {
                    // The result is discarded; the time is what matters.
                    let _ = std::hint::black_box(bcrypt::verify(pass, dummy));
                }
            }
        }
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(key, ok);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_and_dummies() {
        assert_eq!(bcrypt_cost(&format!("$2y$10${DUMMY_TAIL}")), Some(10));
        assert_eq!(bcrypt_cost("doe"), None);
        assert_eq!(bcrypt_cost(&format!("$2y$99${DUMMY_TAIL}")), None);
        let h4 = bcrypt::hash("a", 4).unwrap();
        let h5 = bcrypt::hash("b", 5).unwrap();
        let u = Users::new(BTreeMap::from([("a".into(), h4), ("b".into(), h5)])).unwrap();
        assert_eq!(u.dummies.keys().copied().collect::<Vec<_>>(), vec![4, 5]);
        // A dummy is a valid hash that matches neither password.
        for d in u.dummies.values() {
            assert_eq!(bcrypt::verify("a", d).ok(), Some(false));
        }
        let b = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(u.authorize(Some(&b("a:a"))));
        assert!(u.authorize(Some(&b("b:b"))));
        assert!(!u.authorize(Some(&b("a:b"))));
        assert!(!u.authorize(Some(&b("c:a"))));
    }
}
