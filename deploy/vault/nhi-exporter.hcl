# Least-privilege, read-only policy of the nhi-exporter `vault` source
# (HashiCorp Vault or OpenBao). It grants exactly the calls the source makes.
#
#   bao policy write nhi-exporter deploy/vault/nhi-exporter.hcl
#   bao token create -policy=nhi-exporter -no-default-policy -period=24h
#
# Replace `secret` below with each KV v2 mount listed in `kv_mounts`, and
# `approle` with each AppRole auth mount (the source finds them in sys/auth).
#
# WARNING: listing token accessors requires `sudo` (below). Vault has no
# read-only alternative, so a token holding this policy can enumerate every
# token accessor of the cluster: treat the exporter's own token (or AppRole
# secret-id) as a sensitive credential. It is never granted
# `auth/token/revoke-accessor` nor any write capability.

# KV v2 inventory: walk the metadata of each KV v2 mount (LIST) and read the
# metadata of each secret (created/updated time, versions, custom_metadata).
# OpenBao can also use `scan`; the exporter does not need it.
path "secret/metadata/*" {
  capabilities = ["read", "list"]
}

# Only with `match_values: true`: read the current values to hash them
# (HMAC with the exporter's key; the values are dropped at once). Leave this
# out when match_values is false: the exporter then never reads a secret.
# path "secret/data/*" {
#   capabilities = ["read"]
# }

# Token inventory: list every token accessor. This endpoint is
# root-protected: `sudo` is unavoidable (see the warning above).
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}

# Look each accessor up: creation, expiry, policies, path, display name,
# meta. Returns no token.
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# Find the AppRole auth mounts (type "approle").
path "sys/auth" {
  capabilities = ["read"]
}

# AppRole inventory: list roles, read each role (token_policies), list its
# secret-id accessors. Not granted: reading role-ids or generating
# secret-ids.
path "auth/approle/role" {
  capabilities = ["list"]
}
path "auth/approle/role/+" {
  capabilities = ["read"]
}
path "auth/approle/role/+/secret-id" {
  capabilities = ["list"]
}

# Look each secret-id accessor up (creation and expiration time). Returns no
# secret-id.
path "auth/approle/role/+/secret-id-accessor/lookup" {
  capabilities = ["update"]
}
