//! The IAM credential report (CSV) as the source uses it: per user, the
//! console password flag, the password's last use and the two access key
//! slots. Pure parsing, tested on fixtures.

use std::collections::HashMap;

/// One access key slot (`access_key_1_*`, `access_key_2_*`) that holds a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySlot {
    pub active: bool,
    /// `access_key_N_last_rotated`: the key's creation time.
    pub last_rotated: i64,
    pub last_used: Option<i64>,
}

/// One user row of the report (the `<root_account>` row is skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub user: String,
    pub arn: String,
    pub password_enabled: bool,
    pub password_last_used: Option<i64>,
    /// Only the slots that hold a key (`last_rotated` is a time).
    pub keys: Vec<KeySlot>,
}

impl ReportRow {
    /// Latest use of the password or of any key the report knows of.
    pub fn last_used(&self) -> Option<i64> {
        self.keys
            .iter()
            .filter_map(|k| k.last_used)
            .chain(self.password_last_used)
            .max()
    }
}

/// An ISO 8601 time of the report; `N/A`, `no_information`,
/// `not_supported` and anything unparsable are `None`.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    crate::sources::rfc3339(s)
}

fn parse_bool(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case("true")
}

/// Parse the report CSV into rows keyed by user name.
pub fn parse(content: &[u8]) -> Result<HashMap<String, ReportRow>, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(content);
    let headers = rdr
        .headers()
        .map_err(|e| format!("credential report header: {e}"))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let user_c = col("user").ok_or("credential report: no `user` column")?;
    let arn_c = col("arn");
    let pw_c = col("password_enabled");
    let pw_used_c = col("password_last_used");
    let slots: Vec<(Option<usize>, Option<usize>, Option<usize>)> = (1..=2)
        .map(|n| {
            (
                col(&format!("access_key_{n}_active")),
                col(&format!("access_key_{n}_last_rotated")),
                col(&format!("access_key_{n}_last_used_date")),
            )
        })
        .collect();
    let mut rows = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("credential report line {}: {e}", i + 2))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("");
        let user = get(Some(user_c)).to_string();
        if user.is_empty() || user == "<root_account>" {
            continue;
        }
        let keys = slots
            .iter()
            .filter_map(|&(a, r, u)| {
                Some(KeySlot {
                    active: parse_bool(get(a)),
                    last_rotated: parse_time(get(r))?,
                    last_used: parse_time(get(u)),
                })
            })
            .collect();
        let row = ReportRow {
            arn: get(arn_c).to_string(),
            password_enabled: parse_bool(get(pw_c)),
            password_last_used: parse_time(get(pw_used_c)),
            keys,
            user: user.clone(),
        };
        rows.insert(user, row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/aws/credential_report.csv"
        ))
        .expect("fixture")
    }

    #[test]
    fn parses_aws_report() {
        let rows = parse(&fixture()).expect("parse");
        assert!(!rows.contains_key("<root_account>"));
        assert_eq!(rows.len(), 4);
        let alice = &rows["alice"];
        assert!(alice.password_enabled);
        assert_eq!(
            alice.password_last_used,
            parse_time("2024-03-01T10:00:00+00:00")
        );
        assert_eq!(alice.keys.len(), 1);
        assert_eq!(
            alice.keys[0],
            KeySlot {
                active: true,
                last_rotated: 1_704_067_200,
                last_used: parse_time("2024-03-05T00:00:00+00:00"),
            }
        );
        assert_eq!(alice.last_used(), parse_time("2024-03-05T00:00:00+00:00"));
        let ci = &rows["ci-bot"];
        assert!(!ci.password_enabled);
        assert_eq!(ci.password_last_used, None);
        assert_eq!(ci.keys.len(), 2);
        assert!(!ci.keys[1].active);
        assert_eq!(ci.keys[1].last_used, None);
        let nokeys = &rows["nokeys"];
        assert!(nokeys.keys.is_empty());
        assert_eq!(nokeys.last_used(), None);
        // A user name with a comma, quoted.
        assert!(rows.contains_key("svc,odd"));
    }

    #[test]
    fn parses_moto_style_lowercase_and_not_supported() {
        let csv = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n\
u1,arn:aws:iam::123456789012:user/u1,2024-01-01T00:00:00+00:00,false,not_supported,not_supported,not_supported,false,true,2024-01-02T00:00:00+00:00,N/A,not_supported,not_supported,false,N/A,N/A,not_supported,not_supported,false,false,false,false\n";
        let rows = parse(csv.as_bytes()).expect("parse");
        let u1 = &rows["u1"];
        assert!(!u1.password_enabled);
        assert_eq!(u1.keys.len(), 1);
        assert!(u1.keys[0].active);
        assert_eq!(u1.keys[0].last_used, None);
    }

    #[test]
    fn rejects_report_without_user_column() {
        assert!(parse(b"name,arn\nx,y\n").is_err());
    }
}
