//! JSON policy documents: statements with `Effect`, `Action`, `Resource` and, for resource
//! policies (attached to a secret), `Principal`.
//!
//! ```json
//! {"Version": "1",
//!  "Statement": [{"Effect": "Allow",
//!                 "Action": ["kms:GetSecretValue", "kms:List*"],
//!                 "Resource": ["acs:kms:${region}:${account}:secret/mcp!*"],
//!                 "Principal": {"RAM": ["acs:ram::123456:role/app"]}}]}
//! ```
//!
//! Evaluation: a statement applies when one of its actions, one of its resources and (if it
//! names principals) one of its principals match the request. An applicable `Deny` wins over
//! everything; otherwise an applicable `Allow` allows; otherwise nothing is granted.
//! Actions match case-insensitively; resources and principals exactly. `*` is a wildcard
//! (any run of characters); `${region}` and `${account}` in resources stand for the
//! instance's region and account.

use super::pattern;
use serde::Deserialize;

/// Largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024;
/// Most statements in a document.
pub const MAX_STATEMENTS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawPrincipal {
    /// `"*"`: everyone.
    Any(String),
    /// `{"RAM": [...]}` (any kind name; the values are what is matched).
    Named(std::collections::BTreeMap<String, OneOrMany>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    #[serde(rename = "Sid", default)]
    sid: Option<String>,
    #[serde(rename = "Effect")]
    effect: Effect,
    #[serde(rename = "Action")]
    action: OneOrMany,
    #[serde(rename = "Resource")]
    resource: OneOrMany,
    #[serde(rename = "Principal", default)]
    principal: Option<RawPrincipal>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    #[serde(rename = "Version", default)]
    version: Option<String>,
    #[serde(rename = "Statement")]
    statement: Vec<RawStatement>,
}

/// One checked statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// Lowercase action patterns.
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// `None`: the statement does not restrict principals (identity policies).
    pub principals: Option<Vec<String>>,
}

/// A checked policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    pub statements: Vec<Statement>,
}

/// What a request looks like to a policy.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `kms:GetSecretValue`.
    pub action: &'a str,
    /// Full resource name, e.g. `acs:kms:cn-hangzhou:123456:secret/mcp!db`.
    pub resource: &'a str,
    /// Who asks, e.g. `acs:ram::123456:role/app`; `None` when unknown.
    pub principal: Option<&'a str>,
    pub region: &'a str,
    pub account: &'a str,
}

/// The outcome of evaluating documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    /// An explicit Deny applied (names the statement when it has a Sid).
    Deny(Option<String>),
    /// No statement applied: nothing is granted.
    NotApplicable,
}

impl PolicyDocument {
    /// Parses and checks an identity policy document.
    pub fn parse(json: &str) -> Result<PolicyDocument, String> {
        if json.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "a policy document is at most {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        let raw: RawDocument =
            serde_json::from_str(json).map_err(|e| format!("invalid policy document: {e}"))?;
        if let Some(v) = &raw.version {
            if v != "1" {
                return Err(format!(
                    "policy document Version {v:?} is not supported; use \"1\""
                ));
            }
        }
        if raw.statement.is_empty() || raw.statement.len() > MAX_STATEMENTS {
            return Err(format!(
                "a policy document needs 1 to {MAX_STATEMENTS} statements"
            ));
        }
        let mut statements = Vec::with_capacity(raw.statement.len());
        for (i, s) in raw.statement.into_iter().enumerate() {
            let actions: Vec<String> = s
                .action
                .into_vec()
                .into_iter()
                .map(|a| a.to_ascii_lowercase())
                .collect();
            if actions.is_empty() || actions.iter().any(|a| a.is_empty()) {
                return Err(format!("statement {i}: Action must not be empty"));
            }
            for a in &actions {
                if a != "*" && !a.contains(':') {
                    return Err(format!(
                        "statement {i}: action {a:?} must look like kms:GetSecretValue or kms:List*"
                    ));
                }
            }
            let resources = s.resource.into_vec();
            if resources.is_empty() || resources.iter().any(|r| r.is_empty()) {
                return Err(format!("statement {i}: Resource must not be empty"));
            }
            let principals = match s.principal {
                None => None,
                Some(RawPrincipal::Any(star)) if star == "*" => Some(vec!["*".to_owned()]),
                Some(RawPrincipal::Any(other)) => {
                    return Err(format!(
                        "statement {i}: Principal {other:?} must be \"*\" or {{\"RAM\": [...]}}"
                    ))
                }
                Some(RawPrincipal::Named(map)) => {
                    let all: Vec<String> =
                        map.into_values().flat_map(OneOrMany::into_vec).collect();
                    if all.is_empty() {
                        return Err(format!("statement {i}: Principal names nobody"));
                    }
                    Some(all)
                }
            };
            statements.push(Statement {
                sid: s.sid,
                effect: s.effect,
                actions,
                resources,
                principals,
            });
        }
        Ok(PolicyDocument { statements })
    }

    /// Parses a resource policy: like [`PolicyDocument::parse`], and every statement must
    /// name its principals.
    pub fn parse_resource_policy(json: &str) -> Result<PolicyDocument, String> {
        let doc = PolicyDocument::parse(json)?;
        if let Some(i) = doc.statements.iter().position(|s| s.principals.is_none()) {
            return Err(format!(
                "statement {i}: a resource policy must name a Principal"
            ));
        }
        Ok(doc)
    }

    /// Evaluates this document alone.
    pub fn evaluate(&self, req: &Request<'_>) -> Outcome {
        evaluate(std::slice::from_ref(self), req)
    }
}

fn applies(s: &Statement, req: &Request<'_>) -> bool {
    let action = req.action.to_ascii_lowercase();
    if !s.actions.iter().any(|a| pattern::matches(a, &action)) {
        return false;
    }
    let resource_ok = s.resources.iter().any(|r| {
        let r = r
            .replace("${region}", req.region)
            .replace("${account}", req.account);
        pattern::matches(&r, req.resource)
    });
    if !resource_ok {
        return false;
    }
    match (&s.principals, req.principal) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(list), Some(who)) => list.iter().any(|p| pattern::matches(p, who)),
    }
}

/// Evaluates several documents together (identity and resource policies): an explicit
/// Deny in any of them wins; otherwise any Allow allows; otherwise nothing is granted.
pub fn evaluate(documents: &[PolicyDocument], req: &Request<'_>) -> Outcome {
    let mut allowed = false;
    for s in documents.iter().flat_map(|d| &d.statements) {
        if applies(s, req) {
            match s.effect {
                Effect::Deny => return Outcome::Deny(s.sid.clone()),
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Outcome::Allow
    } else {
        Outcome::NotApplicable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(action: &'a str, resource: &'a str, principal: Option<&'a str>) -> Request<'a> {
        Request {
            action,
            resource,
            principal,
            region: "cn-hangzhou",
            account: "123456",
        }
    }

    const SECRET: &str = "acs:kms:cn-hangzhou:123456:secret/mcp!db";

    #[test]
    fn allow_with_wildcards_and_variables() {
        let doc = PolicyDocument::parse(
            r#"{"Version":"1","Statement":[{"Effect":"Allow",
                "Action":["kms:GetSecretValue","kms:List*"],
                "Resource":"acs:kms:${region}:${account}:secret/mcp!*"}]}"#,
        )
        .unwrap();
        let cases = [
            ("kms:GetSecretValue", SECRET, Outcome::Allow),
            ("KMS:getsecretvalue", SECRET, Outcome::Allow),
            ("kms:ListSecrets", SECRET, Outcome::Allow),
            ("kms:ListSecretVersionIds", SECRET, Outcome::Allow),
            ("kms:PutSecretValue", SECRET, Outcome::NotApplicable),
            (
                "kms:GetSecretValue",
                "acs:kms:cn-hangzhou:123456:secret/other",
                Outcome::NotApplicable,
            ),
            (
                "kms:GetSecretValue",
                "acs:kms:cn-beijing:123456:secret/mcp!db",
                Outcome::NotApplicable,
            ),
            (
                "kms:GetSecretValue",
                "acs:kms:cn-hangzhou:999999:secret/mcp!db",
                Outcome::NotApplicable,
            ),
        ];
        for (action, resource, want) in cases {
            assert_eq!(
                doc.evaluate(&req(action, resource, None)),
                want,
                "{action} {resource}"
            );
        }
    }

    #[test]
    fn explicit_deny_wins_across_documents() {
        let allow = PolicyDocument::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
        )
        .unwrap();
        let deny = PolicyDocument::parse(
            r#"{"Statement":[{"Sid":"no-prod","Effect":"Deny","Action":"kms:GetSecretValue",
                "Resource":"acs:kms:*:*:secret/prod-*"}]}"#,
        )
        .unwrap();
        let docs = [allow.clone(), deny.clone()];
        let prod = "acs:kms:cn-hangzhou:123456:secret/prod-db";
        assert_eq!(
            evaluate(&docs, &req("kms:GetSecretValue", prod, None)),
            Outcome::Deny(Some("no-prod".into()))
        );
        assert_eq!(
            evaluate(&docs, &req("kms:ListSecrets", prod, None)),
            Outcome::Allow
        );
        assert_eq!(
            evaluate(&docs, &req("kms:GetSecretValue", SECRET, None)),
            Outcome::Allow
        );
        // Order does not matter.
        let reversed = [deny, allow];
        assert_eq!(
            evaluate(&reversed, &req("kms:GetSecretValue", prod, None)),
            Outcome::Deny(Some("no-prod".into()))
        );
        assert_eq!(
            evaluate(&[], &req("kms:GetSecretValue", prod, None)),
            Outcome::NotApplicable
        );
    }

    #[test]
    fn principals_restrict_resource_policies() {
        let doc = PolicyDocument::parse_resource_policy(
            r#"{"Version":"1","Statement":[
                {"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"*",
                 "Principal":{"RAM":["acs:ram::777:role/reader","acs:ram::888:*"]}},
                {"Effect":"Deny","Action":"kms:*","Resource":"*",
                 "Principal":{"RAM":"acs:ram::888:user/mallory"}}]}"#,
        )
        .unwrap();
        let r = |who| doc.evaluate(&req("kms:GetSecretValue", SECRET, who));
        assert_eq!(r(Some("acs:ram::777:role/reader")), Outcome::Allow);
        assert_eq!(r(Some("acs:ram::777:role/writer")), Outcome::NotApplicable);
        assert_eq!(r(Some("acs:ram::888:role/any")), Outcome::Allow);
        assert_eq!(r(Some("acs:ram::888:user/mallory")), Outcome::Deny(None));
        assert_eq!(r(None), Outcome::NotApplicable);
        let anyone = PolicyDocument::parse_resource_policy(
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"*","Principal":"*"}]}"#,
        )
        .unwrap();
        assert_eq!(
            anyone.evaluate(&req("kms:GetSecretValue", SECRET, Some("acs:ram::1:root"))),
            Outcome::Allow
        );
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "",
            "{}",
            r#"{"Statement":[]}"#,
            r#"{"Version":"2","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Action":"kms:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"GetSecretValue","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":""}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Principal":"someone"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{}}]}"#,
        ] {
            assert!(PolicyDocument::parse(bad).is_err(), "{bad}");
        }
        let no_principal = r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
        PolicyDocument::parse(no_principal).unwrap();
        assert!(PolicyDocument::parse_resource_policy(no_principal).is_err());
        let huge = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"kms:*","Resource":"{}"}}]}}"#,
            "a".repeat(MAX_DOCUMENT_BYTES)
        );
        assert!(PolicyDocument::parse(&huge).is_err());
    }
}
