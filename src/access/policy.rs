//! RBAC policies: a role on resource patterns, optionally only from some networks, and the
//! decision for one request of an application access point.

use super::endpoint::EndpointKind;
use super::{network, operations, pattern};
use crate::proto::{ApplicationAccessPoint, NetworkRule, Policy};
use std::net::IpAddr;

// A policy grants one role; its name is parsed here as much as anywhere.
pub use super::role::Role;

/// Most policies attached to one AAP.
pub const MAX_POLICIES_PER_AAP: usize = 3;
/// Most resource patterns in one policy.
pub const MAX_RESOURCES: usize = 50;

/// What an application asks to do.
#[derive(Debug, Clone)]
pub struct AccessRequest {
    /// Operation name (`Encrypt`, `GetSecretValue`...).
    pub operation: String,
    /// Names the target goes by (`key/<id>`, `alias/<name>`, `secret/<name>`); a policy must
    /// match one. Empty for operations without a target (GenerateRandom): the role suffices.
    pub resources: Vec<String>,
    pub source: IpAddr,
    /// The gateway endpoint the request arrived on: only network rules of a type meant for
    /// it may admit the request ([`network::admits_endpoint`]).
    pub endpoint: EndpointKind,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        policy: String,
    },
    /// Why nothing granted the request. For logs only: callers are told just "forbidden".
    Deny {
        reason: String,
    },
}

/// Decides a request of `aap`: allowed only when one of its policies has a role that grants
/// the operation, a resource pattern matching the target, and a network rule for the
/// request's endpoint that contains the source address. A policy without network rules
/// admits any source, on the private endpoint only. Deny by default.
pub fn evaluate(
    aap: &ApplicationAccessPoint,
    policies: &[Policy],
    rules: &[NetworkRule],
    req: &AccessRequest,
) -> Decision {
    let Some(roles) = operations::roles_for(&req.operation) else {
        return Decision::Deny {
            reason: format!("{} is not an application operation", req.operation),
        };
    };
    let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let target = if req.resources.is_empty() {
        "the instance".to_owned()
    } else {
        req.resources.join(" or ")
    };
    let mut why = Vec::new();
    for name in &aap.policies {
        let Some(policy) = policies.iter().find(|p| &p.name == name) else {
            why.push(format!("policy {name} does not exist"));
            continue;
        };
        if !wanted.contains(&policy.rbac_role.as_str()) {
            why.push(format!("policy {name} has role {}", policy.rbac_role));
            continue;
        }
        let resource_ok = req.resources.is_empty()
            || policy
                .resources
                .iter()
                .any(|p| req.resources.iter().any(|r| pattern::matches(p, r)));
        if !resource_ok {
            why.push(format!(
                "policy {name} covers only [{}]",
                policy.resources.join(", ")
            ));
            continue;
        }
        if policy.network_rules.is_empty() {
            // Without network rules a policy serves the private endpoint only: the Internet
            // endpoint admits a request only through a `Public` rule the policy names.
            if req.endpoint == EndpointKind::Internet {
                why.push(format!(
                    "policy {name} names no network rule, so it serves the private endpoint only (name a Public rule to serve the Internet endpoint)"
                ));
                continue;
            }
        } else {
            let named: Vec<&NetworkRule> = policy
                .network_rules
                .iter()
                .filter_map(|rule_name| rules.iter().find(|r| &r.name == rule_name))
                .collect();
            let for_endpoint: Vec<&&NetworkRule> = named
                .iter()
                .filter(|r| network::admits_endpoint(&r.network_type, req.endpoint))
                .collect();
            let inside = for_endpoint
                .iter()
                .any(|r| network::allows(&r.source_private_ips, req.source));
            if !inside {
                if for_endpoint.is_empty() && !named.is_empty() {
                    let typed: Vec<String> = named
                        .iter()
                        .map(|r| format!("{} ({})", r.name, r.network_type))
                        .collect();
                    why.push(format!(
                        "policy {name} has no network rule for the {} endpoint among [{}]",
                        req.endpoint,
                        typed.join(", ")
                    ));
                } else {
                    why.push(format!(
                        "policy {name} allows only network rules [{}]",
                        policy.network_rules.join(", ")
                    ));
                }
                continue;
            }
        }
        return Decision::Allow {
            policy: name.clone(),
        };
    }
    if aap.policies.is_empty() {
        why.push("it has no policies".into());
    }
    Decision::Deny {
        reason: format!(
            "AAP {} has no grant of {} on {target} from {} over the {} endpoint for {}: {}",
            aap.name,
            wanted.join("/"),
            req.source,
            req.endpoint,
            req.operation,
            why.join("; ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, sources: &[&str]) -> NetworkRule {
        NetworkRule {
            name: name.into(),
            network_type: "Private".into(),
            source_private_ips: sources.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn policy(name: &str, role: &str, resources: &[&str], rules: &[&str]) -> Policy {
        Policy {
            name: name.into(),
            rbac_role: role.into(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            network_rules: rules.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn aap(policies: &[&str]) -> ApplicationAccessPoint {
        ApplicationAccessPoint {
            name: "app".into(),
            authentication_method: "ClientKey".into(),
            policies: policies.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// role, resources, rule sources ([] = no rule), source, operation, target, allowed.
    type Row<'a> = (
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
        &'a str,
        &'a str,
        &'a [&'a str],
        bool,
    );

    /// role x resource pattern x network rule x source x operation x target => allowed?
    #[test]
    fn decision_table() {
        const K: &str = "CryptoServiceKeyUser";
        const S: &str = "CryptoServiceSecretUser";
        const SS: &str = "SecretUser";
        let office = ["10.0.0.0/8", "fd00::/8"];
        #[rustfmt::skip]
        let table: &[Row] = &[
            // role, resources, rule sources ([] = no rule), source, operation, target, allowed
            (K,  &["key/*"],        &[],       "192.0.2.1", "Encrypt",        &["key/k1"],               true),
            (K,  &["key/*"],        &[],       "192.0.2.1", "Decrypt",        &["key/k1"],               true),
            (K,  &["key/*"],        &[],       "192.0.2.1", "GenerateDataKey", &["key/k1"],              true),
            (K,  &["key/*"],        &[],       "192.0.2.1", "GenerateRandom", &[],                       true),
            (K,  &["key/k1"],       &[],       "192.0.2.1", "Encrypt",        &["key/k1"],               true),
            (K,  &["key/k1"],       &[],       "192.0.2.1", "Encrypt",        &["key/k2"],               false),
            (K,  &["key/k1"],       &[],       "192.0.2.1", "Encrypt",        &["key/k10"],              false),
            (K,  &["alias/app"],    &[],       "192.0.2.1", "Encrypt",        &["key/k1", "alias/app"],  true),
            (K,  &["alias/app"],    &[],       "192.0.2.1", "Encrypt",        &["key/k1"],               false),
            (K,  &["secret/*"],     &[],       "192.0.2.1", "Encrypt",        &["key/k1"],               false),
            // A key that could not be identified (operations::ANY_KEY): every key, or nothing.
            (K,  &["key/*"],        &[],       "192.0.2.1", "Decrypt",        &["key/"],                 true),
            (K,  &["key/k1"],       &[],       "192.0.2.1", "Decrypt",        &["key/"],                 false),
            (K,  &["alias/app"],    &[],       "192.0.2.1", "Decrypt",        &["key/"],                 false),
            (K,  &["key/*"],        &[],       "192.0.2.1", "GetSecretValue", &["secret/db"],            false),
            (S,  &["key/*"],        &[],       "192.0.2.1", "Encrypt",        &["key/k1"],               false),
            (S,  &["key/*"],        &[],       "192.0.2.1", "GenerateRandom", &[],                       false),
            (S,  &["secret/*"],     &[],       "192.0.2.1", "GetSecretValue", &["secret/db"],            true),
            (S,  &["secret/rds-ibm*"], &[],    "192.0.2.1", "GetSecretValue", &["secret/rds-ibm-prod"],  true),
            (S,  &["secret/rds-ibm*"], &[],    "192.0.2.1", "GetSecretValue", &["secret/rds-other"],     false),
            (SS, &["secret/*"],     &[],       "192.0.2.1", "GetSecretValue", &["secret/db"],            true),
            (SS, &["secret/*"],     &[],       "192.0.2.1", "Decrypt",        &["key/k1"],               false),
            (K,  &["key/*"],        &office,   "10.1.2.3",  "Encrypt",        &["key/k1"],               true),
            (K,  &["key/*"],        &office,   "::ffff:10.1.2.3", "Encrypt",  &["key/k1"],               true),
            (K,  &["key/*"],        &office,   "fd00::7",   "Decrypt",        &["key/k1"],               true),
            (K,  &["key/*"],        &office,   "192.0.2.1", "Encrypt",        &["key/k1"],               false),
            (K,  &["key/*"],        &office,   "fe80::1",   "Encrypt",        &["key/k1"],               false),
            (K,  &["key/*"],        &office,   "192.0.2.1", "GenerateRandom", &[],                       false),
            (K,  &["key/*"],        &[],       "192.0.2.1", "CreateKey",      &["key/k1"],               false),
            (K,  &["key/*"],        &[],       "192.0.2.1", "CreatePolicy",   &[],                       false),
        ];
        for (i, (role, resources, sources, source, op, target, want)) in table.iter().enumerate() {
            let rules = vec![rule("office", sources)];
            let rule_names: &[&str] = if sources.is_empty() { &[] } else { &["office"] };
            let policies = vec![policy("p", role, resources, rule_names)];
            let req = AccessRequest {
                operation: op.to_string(),
                resources: target.iter().map(|s| s.to_string()).collect(),
                source: source.parse().unwrap(),
                endpoint: EndpointKind::Private,
            };
            let got = evaluate(&aap(&["p"]), &policies, &rules, &req);
            assert_eq!(
                matches!(got, Decision::Allow { .. }),
                *want,
                "row {i}: {role} {resources:?} {sources:?} {source} {op} {target:?} -> {got:?}"
            );
        }
    }

    #[test]
    fn any_of_the_policies_may_grant_and_denials_explain_each() {
        let rules = vec![rule("office", &["10.0.0.0/8"])];
        let policies = vec![
            policy("secrets", "CryptoServiceSecretUser", &["secret/*"], &[]),
            policy(
                "k1-office",
                "CryptoServiceKeyUser",
                &["key/k1"],
                &["office"],
            ),
            policy("k2", "CryptoServiceKeyUser", &["key/k2"], &[]),
        ];
        let a = aap(&["secrets", "k1-office", "k2"]);
        let req = |key: &str, src: &str| AccessRequest {
            operation: "Encrypt".into(),
            resources: vec![format!("key/{key}")],
            source: src.parse().unwrap(),
            endpoint: EndpointKind::Private,
        };
        assert_eq!(
            evaluate(&a, &policies, &rules, &req("k1", "10.0.0.1")),
            Decision::Allow {
                policy: "k1-office".into()
            }
        );
        assert_eq!(
            evaluate(&a, &policies, &rules, &req("k2", "192.0.2.1")),
            Decision::Allow {
                policy: "k2".into()
            }
        );
        let Decision::Deny { reason } = evaluate(&a, &policies, &rules, &req("k1", "192.0.2.1"))
        else {
            panic!("k1 from outside the office must be denied")
        };
        assert!(
            reason.contains("CryptoServiceKeyUser on key/k1 from 192.0.2.1"),
            "{reason}"
        );
        assert!(
            reason.contains("policy secrets has role CryptoServiceSecretUser"),
            "{reason}"
        );
        assert!(
            reason.contains("policy k1-office allows only network rules [office]"),
            "{reason}"
        );
        assert!(
            reason.contains("policy k2 covers only [key/k2]"),
            "{reason}"
        );
    }

    /// network type x endpoint x source => allowed? A rule admits requests only on the
    /// endpoint its type is for, whatever addresses it lists.
    #[test]
    fn network_rules_admit_only_requests_on_their_endpoint() {
        use EndpointKind::{Internet, Private};
        let typed = |name: &str, network_type: &str, sources: &[&str]| NetworkRule {
            network_type: network_type.into(),
            ..rule(name, sources)
        };
        let everywhere = ["0.0.0.0/0", "::/0"];
        let req = |src: &str, endpoint| AccessRequest {
            operation: "Decrypt".into(),
            resources: vec!["key/k1".into()],
            source: src.parse().unwrap(),
            endpoint,
        };
        #[rustfmt::skip]
        let table: &[(&str, &[&str], &str, EndpointKind, bool)] = &[
            // network type, sources, source, endpoint, allowed
            ("Private", &everywhere,      "10.1.2.3",    Private,  true),
            ("Private", &everywhere,      "10.1.2.3",    Internet, false),
            ("VPC",     &everywhere,      "10.1.2.3",    Private,  true),
            ("VPC",     &everywhere,      "fd00::1",     Internet, false),
            ("Public",  &everywhere,      "203.0.113.9", Internet, true),
            ("Public",  &everywhere,      "203.0.113.9", Private,  false),
            ("Public",  &["192.0.2.0/24"], "203.0.113.9", Internet, false),
            ("Public",  &["192.0.2.0/24"], "192.0.2.77", Internet, true),
            ("Private", &["10.0.0.0/8"],   "192.0.2.77", Private,  false),
        ];
        for (i, (network_type, sources, source, endpoint, want)) in table.iter().enumerate() {
            let rules = vec![typed("net", network_type, sources)];
            let policies = vec![policy("p", "CryptoServiceKeyUser", &["key/*"], &["net"])];
            let got = evaluate(&aap(&["p"]), &policies, &rules, &req(source, *endpoint));
            assert_eq!(
                matches!(got, Decision::Allow { .. }),
                *want,
                "row {i}: {network_type} {sources:?} {source} {endpoint} -> {got:?}"
            );
        }

        // A policy may name one rule per endpoint; each admits its own endpoint's requests.
        let rules = vec![
            typed("office", "Private", &["10.0.0.0/8"]),
            typed("partners", "Public", &["198.51.100.0/24"]),
        ];
        let policies = vec![policy(
            "p",
            "CryptoServiceKeyUser",
            &["key/*"],
            &["office", "partners"],
        )];
        let a = aap(&["p"]);
        let allowed = |src, endpoint| {
            matches!(
                evaluate(&a, &policies, &rules, &req(src, endpoint)),
                Decision::Allow { .. }
            )
        };
        assert!(allowed("10.0.0.5", Private));
        assert!(allowed("198.51.100.5", Internet));
        assert!(!allowed("10.0.0.5", Internet));
        assert!(!allowed("198.51.100.5", Private));

        // Denials say which endpoint the request came through and why no rule applied.
        let only_private = vec![policy("p", "CryptoServiceKeyUser", &["key/*"], &["office"])];
        let Decision::Deny { reason } =
            evaluate(&a, &only_private, &rules, &req("10.0.0.5", Internet))
        else {
            panic!("a Private rule must not admit an Internet request")
        };
        assert!(
            reason.contains("from 10.0.0.5 over the internet endpoint"),
            "{reason}"
        );
        assert!(
            reason.contains(
                "policy p has no network rule for the internet endpoint among [office (Private)]"
            ),
            "{reason}"
        );
        // A policy without network rules admits any source on the private endpoint and
        // nothing on the Internet endpoint.
        let open = vec![policy("p", "CryptoServiceKeyUser", &["key/*"], &[])];
        assert!(matches!(
            evaluate(&a, &open, &[], &req("203.0.113.9", Private)),
            Decision::Allow { .. }
        ));
        let Decision::Deny { reason } = evaluate(&a, &open, &[], &req("203.0.113.9", Internet))
        else {
            panic!("a policy without network rules must not admit an Internet request")
        };
        assert!(
            reason
                .contains("policy p names no network rule, so it serves the private endpoint only"),
            "{reason}"
        );
    }

    #[test]
    fn missing_policies_and_rules_grant_nothing() {
        let req = AccessRequest {
            operation: "Encrypt".into(),
            resources: vec!["key/k1".into()],
            source: "10.0.0.1".parse().unwrap(),
            endpoint: EndpointKind::Private,
        };
        assert!(matches!(
            evaluate(&aap(&[]), &[], &[], &req),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            evaluate(&aap(&["gone"]), &[], &[], &req),
            Decision::Deny { .. }
        ));
        // A policy whose network rule was deleted matches no source.
        let policies = vec![policy("p", "CryptoServiceKeyUser", &["key/*"], &["gone"])];
        assert!(matches!(
            evaluate(&aap(&["p"]), &policies, &[], &req),
            Decision::Deny { .. }
        ));
    }
}
