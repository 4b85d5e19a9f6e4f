//! What this GitLab's GraphQL schema has: the `Vulnerability` fields the
//! query asks for only when they exist, learned by introspection once per
//! poll. GitLab releases of 2023 lack `uuid`, `dismissalReason`,
//! `updatedAt` and `findingTokenStatus` (18.1); asking for a field a server
//! does not have fails the whole query.
//!
//! Without a field the KPIs it feeds degrade instead of failing: no
//! `dismissalReason` → a dismissal's resolution is `other`; no `updatedAt`
//! → a validity statement is timed by the poll; no `findingTokenStatus` →
//! validity `unknown`. When introspection itself is refused, every field is
//! asked for and the `findingTokenStatus` error is adapted to as before.

use super::Field;
use std::collections::HashSet;

/// The `Vulnerability` fields asked for only when the server has them.
pub const OPTIONAL: [&str; 4] = ["uuid", "dismissalReason", "updatedAt", "findingTokenStatus"];

/// The introspection query: the names of `Vulnerability`'s fields.
pub const INTROSPECTION: &str =
    r#"query nhiVulnerabilityFields { __type(name: "Vulnerability") { fields { name } } }"#;

/// The optional fields a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields(HashSet<&'static str>);

impl Fields {
    /// Every optional field (the current schema).
    pub fn all() -> Self {
        Fields(OPTIONAL.into_iter().collect())
    }

    /// The optional fields among a server's `Vulnerability` fields.
    pub fn of(server: &HashSet<String>) -> Self {
        Fields(
            OPTIONAL
                .into_iter()
                .filter(|f| server.contains(*f))
                .collect(),
        )
    }

    pub fn has(&self, f: &str) -> bool {
        self.0.contains(f)
    }

    pub fn without(mut self, f: &str) -> Self {
        self.0.remove(f);
        self
    }

    /// The optional fields left out, for the log.
    pub fn missing(&self) -> Vec<&'static str> {
        OPTIONAL.into_iter().filter(|f| !self.has(f)).collect()
    }
}

#[derive(serde::Deserialize)]
struct Resp {
    data: Option<Data>,
}

#[derive(serde::Deserialize)]
struct Data {
    #[serde(rename = "__type")]
    ty: Option<Type>,
}

#[derive(serde::Deserialize)]
struct Type {
    fields: Option<Vec<FieldName>>,
}

#[derive(serde::Deserialize)]
struct FieldName {
    name: String,
}

/// The `Vulnerability` field names of an introspection response; `None`
/// when the response does not tell (introspection refused, no such type).
pub fn parse_introspection(body: &[u8]) -> Option<HashSet<String>> {
    let r: Resp = serde_json::from_slice(body).ok()?;
    let fields = r.data?.ty?.fields?;
    let names: HashSet<String> = fields.into_iter().map(|f| f.name).collect();
    // A `Vulnerability` without `id` is not the type this source reads.
    names.contains("id").then_some(names)
}

/// The query for one page. `$first` is the page size (100 unless a
/// complexity limit asked for less); optional fields are asked for only
/// when the server has them.
pub fn query(field: Field, fields: &Fields) -> String {
    let opt = |f: &str, text: &str| {
        if fields.has(f) {
            text.to_string()
        } else {
            String::new()
        }
    };
    format!(
        "query nhiSecretDetection($fullPath: ID!, $after: String, $first: Int) {{ \
         {field}(fullPath: $fullPath) {{ \
         vulnerabilities(reportType: [SECRET_DETECTION], state: [DETECTED, CONFIRMED, RESOLVED, DISMISSED], first: $first, after: $after) {{ \
         pageInfo {{ endCursor hasNextPage }} \
         nodes {{ id{} title state severity reportType detectedAt resolvedAt dismissedAt{}{}{} \
         location {{ ... on VulnerabilityLocationSecretDetection {{ file startLine blobPath }} }} \
         identifiers {{ externalType externalId name }} \
         project {{ fullPath }} }} }} }} }}",
        opt("uuid", " uuid"),
        opt("dismissalReason", " dismissalReason"),
        opt("updatedAt", " updatedAt"),
        opt("findingTokenStatus", " findingTokenStatus { status }"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Vulnerability` fields of GitLab's public GraphQL reference
    /// (doc/api/graphql/reference): the current release, and a 2023 one
    /// (16.0), each as the fields the query uses.
    const CURRENT: &[&str] = &[
        "id",
        "uuid",
        "title",
        "state",
        "severity",
        "reportType",
        "detectedAt",
        "resolvedAt",
        "dismissedAt",
        "dismissalReason",
        "updatedAt",
        "findingTokenStatus",
        "location",
        "identifiers",
        "project",
    ];
    const GITLAB_2023: &[&str] = &[
        "id",
        "title",
        "state",
        "severity",
        "reportType",
        "detectedAt",
        "resolvedAt",
        "dismissedAt",
        "location",
        "identifiers",
        "project",
    ];

    fn introspected(names: &[&str]) -> HashSet<String> {
        let body = serde_json::json!({"data": {"__type": {"fields":
            names.iter().map(|n| serde_json::json!({"name": n})).collect::<Vec<_>>()}}});
        parse_introspection(body.to_string().as_bytes()).expect("fields")
    }

    /// Every `Vulnerability` field the query names.
    fn asked(q: &str) -> Vec<&'static str> {
        // Sub-selections are of other types: only the field itself counts.
        let nodes = q
            .split("nodes { ")
            .nth(1)
            .unwrap()
            .replace(" { status }", "");
        let nodes: &'static str = Box::leak(nodes.into_boxed_str());
        let nodes = nodes.split(" location {").next().unwrap();
        let mut v: Vec<&str> = nodes
            .split_whitespace()
            .filter(|w| w.chars().all(char::is_alphanumeric))
            .collect();
        v.extend(["location", "identifiers", "project"]);
        v
    }

    #[test]
    fn the_query_asks_only_for_fields_the_server_has() {
        for (schema, missing) in [
            (CURRENT, vec![]),
            (
                GITLAB_2023,
                vec!["uuid", "dismissalReason", "updatedAt", "findingTokenStatus"],
            ),
        ] {
            let server = introspected(schema);
            let fields = Fields::of(&server);
            assert_eq!(fields.missing(), missing);
            let q = query(Field::Group, &fields);
            for f in asked(&q) {
                assert!(schema.contains(&f), "{f} asked of a server without it: {q}");
            }
        }
        assert_eq!(Fields::of(&introspected(CURRENT)), Fields::all());
    }

    #[test]
    fn refused_introspection_tells_nothing() {
        assert_eq!(
            parse_introspection(br#"{"errors":[{"message":"introspection is disabled"}]}"#),
            None
        );
        assert_eq!(parse_introspection(br#"{"data":{"__type":null}}"#), None);
        assert_eq!(parse_introspection(b"<html>"), None);
    }
}
