//! The `secretsmanager/{region}` scopes (`<account>/secretsmanager/{region}`
//! under `organization`): `ListSecrets` of one region.

use super::{sdk_error, PROVIDER};
use crate::model::{CredentialState, ErrorReason, InventoryScan, ObservedCredential, SourceError};
use aws_sdk_secretsmanager::types::SecretListEntry;

/// One `ListSecrets` entry as a credential (`None` without an ARN). The
/// secret value is never read.
pub fn secret_credential(e: &SecretListEntry, team_tag: &str) -> Option<ObservedCredential> {
    let arn = e.arn()?;
    let created = e.created_date().map(|t| t.secs());
    let team = e
        .tags()
        .iter()
        .find(|t| t.key() == Some(team_tag))
        .and_then(|t| t.value())
        .map(str::to_string);
    Some(ObservedCredential {
        provider: PROVIDER,
        account: super::iam::account_of(arn).unwrap_or_default(),
        kind: "secret",
        id: arn.to_string(),
        identity: None,
        team,
        created_at: created,
        last_rotated_at: e.last_rotated_date().map(|t| t.secs()).or(created),
        expires_at: None,
        last_used_at: e.last_accessed_date().map(|t| t.secs()),
        state: if e.deleted_date().is_some() {
            CredentialState::Inactive
        } else {
            CredentialState::Active
        },
        rotation_enabled: e.rotation_enabled().unwrap_or(false),
        value_hashes: Vec::new(),
        aliases: Vec::new(),
    })
}

/// The complete inventory of one region's secrets (secrets scheduled for
/// deletion included, as inactive).
pub async fn scan(
    client: &aws_sdk_secretsmanager::Client,
    scope: &str,
    team_tag: &str,
    now: i64,
) -> Result<InventoryScan, SourceError> {
    let mut credentials = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1_000_000 {
        let page = client
            .list_secrets()
            .max_results(100)
            .include_planned_deletion(true)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| sdk_error("ListSecrets", e))?;
        credentials.extend(
            page.secret_list()
                .iter()
                .filter_map(|e| secret_credential(e, team_tag)),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => {
                return Ok(InventoryScan {
                    scope: scope.to_string(),
                    observed_at: now,
                    identities: Vec::new(),
                    credentials,
                })
            }
        }
    }
    Err(SourceError::new(
        ErrorReason::Parse,
        "ListSecrets: pagination does not end",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::primitives::DateTime;
    use aws_sdk_secretsmanager::types::Tag;

    #[test]
    fn maps_rotated_secret() {
        let e = SecretListEntry::builder()
            .arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf")
            .name("db")
            .created_date(DateTime::from_secs(1_000))
            .last_rotated_date(DateTime::from_secs(2_000))
            .last_accessed_date(DateTime::from_secs(3_000))
            .rotation_enabled(true)
            .tags(Tag::builder().key("team").value("payments").build())
            .build();
        let c = secret_credential(&e, "team").expect("mapped");
        assert_eq!(c.kind, "secret");
        assert_eq!(
            c.id,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
        );
        assert_eq!(c.identity, None);
        assert_eq!(c.account, "123456789012");
        assert_eq!(c.team.as_deref(), Some("payments"));
        assert_eq!(c.created_at, Some(1_000));
        assert_eq!(c.last_rotated_at, Some(2_000));
        assert_eq!(c.last_used_at, Some(3_000));
        assert_eq!(c.expires_at, None);
        assert_eq!(c.state, CredentialState::Active);
        assert!(c.rotation_enabled);
    }

    #[test]
    fn maps_unrotated_deleted_secret() {
        let e = SecretListEntry::builder()
            .arn("arn:aws:secretsmanager:eu-west-1:123456789012:secret:old-XyZ")
            .created_date(DateTime::from_secs(1_000))
            .deleted_date(DateTime::from_secs(5_000))
            .build();
        let c = secret_credential(&e, "team").expect("mapped");
        assert_eq!(c.last_rotated_at, Some(1_000));
        assert_eq!(c.last_used_at, None);
        assert_eq!(c.team, None);
        assert_eq!(c.state, CredentialState::Inactive);
        assert!(!c.rotation_enabled);
        assert!(secret_credential(&SecretListEntry::builder().build(), "team").is_none());
    }
}
