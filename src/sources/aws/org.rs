//! `organization`: the member accounts of an AWS Organization and a
//! session in each.
//!
//! `ListAccounts` (paged, `MaxResults` 20) with the source's own
//! credentials, ACTIVE accounts only (`State`, else the older `Status`),
//! filtered by `include` / `exclude` (globs on the account id or name);
//! then `AssumeRole` of `arn:<partition>:iam::<account>:role/<role_name>`
//! (session name `nhi-exporter`, optional external id) per account. A
//! session is reused until 15 minutes before it expires, so the steady
//! state makes one `AssumeRole` per account per hour, not per poll.

use super::config::OrgConfig;
use super::sdk_error;
use crate::model::{ErrorReason, SourceError};
use aws_credential_types::Credentials;

/// An ACTIVE member account, as `ListAccounts` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
    /// `aws`, `aws-us-gov`, `aws-cn`: from the account's ARN.
    pub partition: String,
}

/// Sessions are renewed this long before they expire.
pub const RENEW_BEFORE: i64 = 15 * 60;

/// Whether `state` (the newer field) or else `status` says ACTIVE.
pub fn is_active(state: Option<&str>, status: Option<&str>) -> bool {
    match state {
        Some(s) => s == "ACTIVE",
        None => status == Some("ACTIVE"),
    }
}

/// The partition of an ARN (`arn:aws-us-gov:...` → `aws-us-gov`); `aws`
/// when the ARN is missing or malformed.
pub fn partition_of(arn: Option<&str>) -> String {
    arn.and_then(|a| a.split(':').nth(1))
        .filter(|p| p.starts_with("aws"))
        .unwrap_or("aws")
        .to_string()
}

/// Every ACTIVE account of the organization, in `ListAccounts` order.
pub async fn list_accounts(
    client: &aws_sdk_organizations::Client,
) -> Result<Vec<Account>, SourceError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100_000 {
        let page = client
            .list_accounts()
            .max_results(20)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| sdk_error("ListAccounts", e))?;
        for a in page.accounts() {
            let (Some(id), active) = (
                a.id(),
                is_active(
                    a.state().map(|s| s.as_str()),
                    a.status().map(|s| s.as_str()),
                ),
            ) else {
                continue;
            };
            if active {
                out.push(Account {
                    id: id.to_string(),
                    name: a.name().unwrap_or_default().to_string(),
                    partition: partition_of(a.arn()),
                });
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
    Err(SourceError::new(
        ErrorReason::Parse,
        "ListAccounts: pagination does not end",
    ))
}

fn matches_any(patterns: &[glob::Pattern], a: &Account) -> bool {
    patterns
        .iter()
        .any(|p| p.matches(&a.id) || (!a.name.is_empty() && p.matches(&a.name)))
}

/// The accounts to poll: matched by an `include` glob (id or name) and by
/// no `exclude` glob.
pub fn select(accounts: Vec<Account>, org: &OrgConfig) -> Vec<Account> {
    accounts
        .into_iter()
        .filter(|a| matches_any(&org.include, a) && !matches_any(&org.exclude, a))
        .collect()
}

/// The role ARN assumed in `account`.
pub fn role_arn(account: &Account, role_name: &str) -> String {
    format!(
        "arn:{}:iam::{}:role/{}",
        account.partition, account.id, role_name
    )
}

/// A session in `account` (the role's credentials and their expiry).
pub async fn assume(
    sts: &aws_sdk_sts::Client,
    account: &Account,
    org: &OrgConfig,
) -> Result<(Credentials, Option<i64>), SourceError> {
    let arn = role_arn(account, &org.role_name);
    let out = sts
        .assume_role()
        .role_arn(&arn)
        .role_session_name("nhi-exporter")
        .set_external_id(org.external_id.clone())
        .send()
        .await
        .map_err(|e| sdk_error(&format!("AssumeRole {arn}"), e))?;
    let c = out.credentials().ok_or_else(|| {
        SourceError::new(
            ErrorReason::Parse,
            format!("AssumeRole {arn}: no credentials in the response"),
        )
    })?;
    let expires = c.expiration().secs();
    let expiry =
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(expires.max(0) as u64));
    Ok((
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "nhi-exporter-organization",
        ),
        Some(expires),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(include: &[&str], exclude: &[&str]) -> OrgConfig {
        let p = |v: &[&str]| v.iter().map(|s| glob::Pattern::new(s).unwrap()).collect();
        OrgConfig {
            role_name: "nhi-exporter-read".into(),
            external_id: None,
            include: p(include),
            exclude: p(exclude),
            concurrency: 8,
        }
    }

    fn acct(id: &str, name: &str) -> Account {
        Account {
            id: id.into(),
            name: name.into(),
            partition: "aws".into(),
        }
    }

    #[test]
    fn selects_by_id_or_name_globs() {
        let all = vec![
            acct("111111111111", "management"),
            acct("222222222222", "prod-payments"),
            acct("333333333333", "dev-sandbox"),
        ];
        let ids = |v: Vec<Account>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(
            ids(select(all.clone(), &org(&["*"], &["111111111111"]))),
            ["222222222222", "333333333333"]
        );
        assert_eq!(
            ids(select(all.clone(), &org(&["prod-*", "3333*"], &[]))),
            ["222222222222", "333333333333"]
        );
        assert_eq!(
            ids(select(all, &org(&["*"], &["*sandbox", "management"]))),
            ["222222222222"]
        );
    }

    #[test]
    fn active_partition_and_role_arn() {
        assert!(is_active(Some("ACTIVE"), None));
        assert!(is_active(None, Some("ACTIVE")));
        assert!(!is_active(Some("SUSPENDED"), Some("ACTIVE")));
        assert!(!is_active(None, Some("PENDING_CLOSURE")));
        assert!(!is_active(None, None));
        assert_eq!(
            partition_of(Some("arn:aws-us-gov:organizations::1:account/o-x/2")),
            "aws-us-gov"
        );
        assert_eq!(partition_of(None), "aws");
        assert_eq!(
            role_arn(&acct("222222222222", "x"), "nhi-exporter-read"),
            "arn:aws:iam::222222222222:role/nhi-exporter-read"
        );
    }
}
