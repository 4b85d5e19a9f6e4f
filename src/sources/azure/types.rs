//! The fields of Microsoft Graph v1.0, ARM `Microsoft.Authorization` and
//! Key Vault 7.4 objects that the source reads (everything else is
//! ignored). Names as in Microsoft's published API descriptions.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `passwordCredential` (a client secret) or `keyCredential` (a certificate).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GraphCredential {
    pub key_id: Option<String>,
    pub display_name: Option<String>,
    /// The secret's first characters (password credentials only).
    pub hint: Option<String>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
}

/// An `application` or a `servicePrincipal`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryApp {
    pub id: String,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Applications only (`servicePrincipal` does not declare it in v1.0).
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// Service principals: `Application`, `ManagedIdentity`, `Legacy`, `SocialIdp`.
    #[serde(default)]
    pub service_principal_type: Option<String>,
    #[serde(default)]
    pub app_owner_organization_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub password_credentials: Vec<GraphCredential>,
    #[serde(default)]
    pub key_credentials: Vec<GraphCredential>,
}

/// `unifiedRoleDefinition`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `unifiedRoleAssignment` with `$expand=principal`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    pub principal_id: String,
    #[serde(default)]
    pub directory_scope_id: Option<String>,
    #[serde(default)]
    pub principal: Option<Principal>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Principal {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
}

/// `servicePrincipalSignInActivity` (beta reports).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpSignIn {
    pub app_id: Option<String>,
    pub last_sign_in_activity: Option<SignIn>,
}

/// `appCredentialSignInActivity` (beta reports).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSignIn {
    pub key_id: Option<String>,
    pub sign_in_activity: Option<SignIn>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SignIn {
    pub last_sign_in_date_time: Option<String>,
}

/// ARM `RoleDefinition`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ArmRoleDefinition {
    /// The definition's GUID.
    pub name: String,
    pub properties: ArmRoleDefinitionProperties,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArmRoleDefinitionProperties {
    pub role_name: Option<String>,
}

/// ARM `RoleAssignment`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ArmRoleAssignment {
    pub properties: ArmRoleAssignmentProperties,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArmRoleAssignmentProperties {
    pub role_definition_id: String,
    pub principal_id: String,
    /// `User`, `Group`, `ServicePrincipal`, `ForeignGroup`, `Device`.
    #[serde(default)]
    pub principal_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Key Vault `SecretItem` (a list entry: the current version's attributes).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VaultSecretItem {
    /// `https://NAME.vault.azure.net/secrets/SECRET` (no version).
    pub id: String,
    #[serde(default)]
    pub attributes: VaultAttributes,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub managed: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct VaultAttributes {
    pub enabled: Option<bool>,
    /// Unix seconds.
    pub exp: Option<i64>,
    pub created: Option<i64>,
    pub updated: Option<i64>,
}

/// Key Vault `SecretBundle`: only its value is read, hashed and dropped.
#[derive(Deserialize)]
pub struct VaultSecretValue {
    pub value: Option<String>,
}
