//! Tencent's KMS API (`2019-01-18`), key management, through a real gateway with requests
//! signed by the test's own TC3 code: CreateKey, DescribeKey(s), ListKeys, ListKeyDetail,
//! UpdateAlias, UpdateKeyDescription, Enable/DisableKey(s), deletion and rotation, each
//! action's happy path and at least one refusal with its Tencent code.
//! (`tencent_kms_crypto.rs`: encryption, signatures, import; `tencent_kms_sdk.rs`: the
//! service actions, refusals, and the official SDK.)

#[path = "common/mod.rs"]
mod common;
#[path = "support/gateway.rs"]
mod support;
#[path = "support/tencent.rs"]
mod tencent;
#[path = "support/tencent_kms.rs"]
mod tencent_kms;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::json;
use support::{GatewayProc, Instance};
use tencent::now;
use tencent_kms::{admin, b64, ids, Tc};

#[test]
fn keys_are_created_described_listed_and_managed() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let key = admin(&inst, "tc-admin");
    let mut tc = Tc::new(&gw, &inst, &key);

    // CreateKey, and what it refuses.
    let before = now();
    let r = tc.ok(
        "CreateKey",
        json!({"Alias": "orders", "Description": "orders db",
               "Tags": [{"TagKey": "team", "TagValue": "payments"}]}),
    );
    let k1 = r["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(r["Alias"], "orders");
    assert_eq!(r["KeyState"], "Enabled");
    assert_eq!(r["KeyUsage"], "ENCRYPT_DECRYPT");
    assert_eq!(r["Description"], "orders db");
    assert!(r["CreateTime"].as_i64().unwrap() >= before - 1, "{r}");
    let k2 = tc.create("billing", "ENCRYPT_DECRYPT");
    let signing = tc.create("release-signing", "ASYMMETRIC_SIGN_VERIFY_ECC");
    for (params, code) in [
        (
            json!({"Alias": "orders"}),
            "InvalidParameterValue.AliasAlreadyExists",
        ),
        (
            json!({"Alias": "two words"}),
            "InvalidParameterValue.InvalidAlias",
        ),
        (
            json!({"Alias": "kms-cbs"}),
            "InvalidParameterValue.InvalidAlias",
        ),
        (json!({"Description": "no alias"}), "MissingParameter"),
        (
            json!({"Alias": "sm2", "KeyUsage": "ASYMMETRIC_SIGN_VERIFY_SM2"}),
            "UnsupportedOperation.UnsupportedKeyUsageInCurrentRegion",
        ),
        (
            json!({"Alias": "u", "KeyUsage": "SIGN_VERIFY"}),
            "InvalidParameterValue.InvalidKeyUsage",
        ),
        (
            json!({"Alias": "t", "Type": 3}),
            "InvalidParameterValue.InvalidType",
        ),
        (json!({"Alias": "t", "Type": "1"}), "InvalidParameterValue"),
        (json!({"Alias": "c", "Colour": "red"}), "UnknownParameter"),
        (
            json!({"Alias": "h", "HsmClusterId": "cls-1"}),
            "InvalidParameterValue.InvalidHsmClusterId",
        ),
    ] {
        assert_eq!(tc.code("CreateKey", params.clone()), code, "{params}");
    }

    // DescribeKey by id and by alias; DescribeKeys.
    let m = tc.meta(&k1);
    assert_eq!(m["KeyId"], k1.as_str());
    assert_eq!(m["Alias"], "orders");
    assert_eq!(m["KeyState"], "Enabled");
    assert_eq!(m["Origin"], "TENCENT_KMS");
    assert_eq!(m["KeyRotationEnabled"], false);
    assert_eq!(m["DeletionDate"], 0);
    assert_eq!(tc.meta("alias/orders")["KeyId"], k1.as_str());
    assert_eq!(
        tc.code(
            "DescribeKey",
            json!({"KeyId": uuid::Uuid::new_v4().to_string()})
        ),
        "ResourceUnavailable.CmkNotFound"
    );
    assert_eq!(tc.code("DescribeKey", json!({})), "MissingParameter");
    let r = tc.ok("DescribeKeys", json!({"KeyIds": [k1, k2]}));
    let metas = r["KeyMetadatas"].as_array().unwrap();
    assert_eq!(metas.len(), 2);
    assert_eq!(metas[1]["Alias"], "billing");
    assert_eq!(
        tc.code("DescribeKeys", json!({"KeyIds": [k1, k1]})),
        "InvalidParameterValue.DuplicatedKeyId"
    );
    assert_eq!(
        tc.code("DescribeKeys", json!({"KeyIds": []})),
        "InvalidParameterValue"
    );

    // ListKeys and ListKeyDetail.
    let r = tc.ok("ListKeys", json!({"Limit": 200}));
    assert_eq!(r["TotalCount"], 3, "{r}");
    let listed = ids(&r, "Keys");
    for k in [&k1, &k2, &signing] {
        assert!(listed.contains(k), "{k}");
    }
    let r = tc.ok("ListKeys", json!({"Offset": 1, "Limit": 1}));
    assert_eq!(ids(&r, "Keys").len(), 1);
    assert_eq!(r["TotalCount"], 3);
    assert_eq!(
        tc.ok("ListKeys", json!({"Role": 1}))["TotalCount"],
        0,
        "no keys of cloud products"
    );
    assert_eq!(
        tc.code("ListKeys", json!({"Limit": 201})),
        "InvalidParameterValue"
    );
    // Without KeyUsage, ListKeyDetail lists ENCRYPT_DECRYPT keys (as Tencent documents),
    // newest first (OrderType 0) or oldest first (1); keys made in the same second come in
    // key id order.
    let r = tc.ok("ListKeyDetail", json!({}));
    assert_eq!(r["TotalCount"], 2, "{r}");
    let mut symmetric = [k1.clone(), k2.clone()];
    symmetric.sort();
    let newest_first = ids(&r, "KeyMetadatas");
    let mut sorted = newest_first.clone();
    sorted.sort();
    assert_eq!(sorted, symmetric);
    let times: Vec<i64> = r["KeyMetadatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["CreateTime"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{r}");
    let r = tc.ok("ListKeyDetail", json!({"OrderType": 1}));
    let mut oldest_first = ids(&r, "KeyMetadatas");
    oldest_first.reverse();
    assert_eq!(oldest_first, newest_first);
    let r = tc.ok("ListKeyDetail", json!({"KeyUsage": "ALL"}));
    assert_eq!(r["TotalCount"], 3, "{r}");
    let r = tc.ok(
        "ListKeyDetail",
        json!({"KeyUsage": "ASYMMETRIC_SIGN_VERIFY_ECC"}),
    );
    assert_eq!(ids(&r, "KeyMetadatas"), [signing.as_str()]);
    let r = tc.ok("ListKeyDetail", json!({"SearchKeyAlias": "ord"}));
    assert_eq!(ids(&r, "KeyMetadatas"), [k1.as_str()]);
    assert_eq!(r["KeyMetadatas"][0]["Description"], "orders db");
    let r = tc.ok(
        "ListKeyDetail",
        json!({"TagFilters": [{"TagKey": "team", "TagValue": ["payments"]}]}),
    );
    assert_eq!(ids(&r, "KeyMetadatas"), [k1.as_str()]);
    let r = tc.ok("ListKeyDetail", json!({"Origin": "EXTERNAL"}));
    assert_eq!(r["TotalCount"], 0);
    assert_eq!(
        tc.code("ListKeyDetail", json!({"KeyState": 9})),
        "InvalidParameterValue"
    );

    // UpdateKeyDescription.
    tc.ok(
        "UpdateKeyDescription",
        json!({"KeyId": k1, "Description": "orders, v2"}),
    );
    assert_eq!(tc.meta(&k1)["Description"], "orders, v2");
    assert_eq!(
        tc.code(
            "UpdateKeyDescription",
            json!({"KeyId": k1, "Description": "x".repeat(1025)})
        ),
        "InvalidParameterValue"
    );

    // UpdateAlias renames the key's alias.
    tc.ok("UpdateAlias", json!({"KeyId": k1, "Alias": "orders-v2"}));
    assert_eq!(tc.meta(&k1)["Alias"], "orders-v2");
    assert_eq!(
        tc.code("DescribeKey", json!({"KeyId": "alias/orders"})),
        "ResourceUnavailable.CmkNotFound"
    );
    assert_eq!(tc.meta("alias/orders-v2")["KeyId"], k1.as_str());
    assert_eq!(
        tc.code("UpdateAlias", json!({"KeyId": k1, "Alias": "billing"})),
        "InvalidParameterValue.AliasAlreadyExists"
    );
    assert_eq!(
        tc.code("UpdateAlias", json!({"KeyId": k1, "Alias": "a/b"})),
        "InvalidParameterValue.InvalidAlias"
    );
    // A key made by the CLI has no alias until UpdateAlias gives it one.
    let cli_key = inst.create_key();
    assert_eq!(tc.meta(&cli_key)["Alias"], "");
    tc.ok(
        "UpdateAlias",
        json!({"KeyId": cli_key, "Alias": "from-cli"}),
    );
    assert_eq!(tc.meta(&cli_key)["Alias"], "from-cli");
    let aliases = inst.d.cli_json(&["alias", "list", "--key-id", &cli_key]);
    assert!(aliases.to_string().contains("alias/from-cli"), "{aliases}");

    // DisableKey, EnableKey, and the batch forms.
    let pt = json!({"KeyId": k1, "Plaintext": B64.encode(b"x")});
    tc.ok("DisableKey", json!({ "KeyId": k1 }));
    assert_eq!(tc.meta(&k1)["KeyState"], "Disabled");
    assert_eq!(
        tc.code("Encrypt", pt.clone()),
        "ResourceUnavailable.CmkDisabled"
    );
    tc.ok("EnableKey", json!({ "KeyId": k1 }));
    tc.ok("Encrypt", pt.clone());
    for action in ["EnableKey", "DisableKey"] {
        assert_eq!(
            tc.code(action, json!({"KeyId": uuid::Uuid::new_v4().to_string()})),
            "ResourceUnavailable.CmkNotFound"
        );
    }
    tc.ok("DisableKeys", json!({"KeyIds": [k1, k2]}));
    assert_eq!(tc.meta(&k2)["KeyState"], "Disabled");
    tc.ok("EnableKeys", json!({"KeyIds": [k1, k2]}));
    assert_eq!(tc.meta(&k1)["KeyState"], "Enabled");
    // Every key is checked before any changes.
    assert_eq!(
        tc.code(
            "DisableKeys",
            json!({"KeyIds": [k1, uuid::Uuid::new_v4().to_string()]})
        ),
        "ResourceUnavailable.CmkNotFound"
    );
    assert_eq!(tc.meta(&k1)["KeyState"], "Enabled");
    assert_eq!(
        tc.code("EnableKeys", json!({"KeyIds": "k1"})),
        "InvalidParameterValue"
    );

    // ScheduleKeyDeletion and CancelKeyDeletion.
    assert_eq!(
        tc.code(
            "ScheduleKeyDeletion",
            json!({"KeyId": k2, "PendingWindowInDays": 7})
        ),
        "ResourceUnavailable.CmkShouldBeDisabled"
    );
    for days in [6, 31] {
        assert_eq!(
            tc.code(
                "ScheduleKeyDeletion",
                json!({"KeyId": k2, "PendingWindowInDays": days})
            ),
            "InvalidParameter.InvalidPendingWindowInDays"
        );
    }
    tc.ok("DisableKey", json!({ "KeyId": k2 }));
    let r = tc.ok(
        "ScheduleKeyDeletion",
        json!({"KeyId": k2, "PendingWindowInDays": 7}),
    );
    assert_eq!(r["KeyId"], k2.as_str());
    let due = r["DeletionDate"].as_i64().unwrap();
    assert!((due - (now() + 7 * 86_400)).abs() < 60, "{r}");
    let m = tc.meta(&k2);
    assert_eq!(m["KeyState"], "PendingDelete");
    assert_eq!(m["DeletionDate"], due);
    assert_eq!(
        tc.code(
            "Encrypt",
            json!({"KeyId": k2, "Plaintext": B64.encode(b"x")})
        ),
        "ResourceUnavailable.KeyPendingDelete"
    );
    assert_eq!(
        tc.code("EnableKey", json!({ "KeyId": k2 })),
        "ResourceUnavailable.KeyPendingDelete"
    );
    let r = tc.ok("CancelKeyDeletion", json!({ "KeyId": k2 }));
    assert_eq!(r["KeyId"], k2.as_str());
    assert_eq!(tc.meta(&k2)["KeyState"], "Disabled");
    assert_eq!(
        tc.code("CancelKeyDeletion", json!({ "KeyId": k2 })),
        "ResourceUnavailable.CmkNotPendingDelete"
    );

    // Rotation.
    assert_eq!(
        tc.ok("GetKeyRotationStatus", json!({ "KeyId": k1 }))["KeyRotationEnabled"],
        false
    );
    tc.ok("EnableKeyRotation", json!({"KeyId": k1, "RotateDays": 30}));
    assert_eq!(
        tc.ok("GetKeyRotationStatus", json!({ "KeyId": k1 }))["KeyRotationEnabled"],
        true
    );
    let m = tc.meta(&k1);
    assert_eq!(m["KeyRotationEnabled"], true);
    assert_eq!(m["RotateDays"], 30);
    let next = m["NextRotateTime"].as_i64().unwrap();
    assert!((next - (now() + 30 * 86_400)).abs() < 60, "{m}");
    for days in [6, 366] {
        assert_eq!(
            tc.code(
                "EnableKeyRotation",
                json!({"KeyId": k1, "RotateDays": days})
            ),
            "InvalidParameterValue"
        );
    }
    tc.ok("DisableKeyRotation", json!({ "KeyId": k1 }));
    assert_eq!(tc.meta(&k1)["KeyRotationEnabled"], false);
    assert_eq!(
        tc.code(
            "GetKeyRotationStatus",
            json!({"KeyId": uuid::Uuid::new_v4().to_string()})
        ),
        "ResourceUnavailable.CmkNotFound"
    );
    assert_eq!(tc.code("DisableKeyRotation", json!({})), "MissingParameter");

    // RotateKey: a new primary version; what the old one encrypted still decrypts.
    let old = tc.ok("Encrypt", pt.clone())["CiphertextBlob"].clone();
    let before = tc.meta(&k1)["LastRotateTime"].as_i64().unwrap();
    let r = tc.ok("RotateKey", json!({ "KeyId": k1 }));
    assert!(!r["TaskId"].as_str().unwrap().is_empty(), "{r}");
    assert!(tc.meta(&k1)["LastRotateTime"].as_i64().unwrap() >= before);
    let versions = inst.d.cli_json(&["key", "versions", &k1]);
    assert!(
        versions.to_string().contains(r["TaskId"].as_str().unwrap()),
        "{versions}"
    );
    let opened = tc.ok("Decrypt", json!({ "CiphertextBlob": old }));
    assert_eq!(b64(&opened["Plaintext"]), b"x");
    assert_eq!(
        tc.code("RotateKey", json!({ "KeyId": k2 })),
        "ResourceUnavailable.CmkDisabled"
    );
}

/// The code and message of a refusal by the permission system.
fn unauthorized() -> (String, String) {
    (
        "AuthFailure.UnauthorizedOperation".to_owned(),
        "This operation is forbidden by permission system.".to_owned(),
    )
}

#[test]
fn aliases_are_names_a_policy_must_grant() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let owner = admin(&inst, "tc-owner");
    let mut tc = Tc::new(&gw, &inst, &owner);
    let k1 = tc.create("k1-name", "ENCRYPT_DECRYPT");
    let orders = tc.create("orders", "ENCRYPT_DECRYPT");

    // An administrator of K1 only, and one of every key but no alias, may give no name:
    // neither a free one nor a taken one, and the refusal is the same for both.
    let only_k1 = tencent::tc_app(
        &inst,
        "tc-k1",
        "CryptoServiceKeyAdministrator",
        &format!("key/{k1}"),
        None,
    );
    let every_key = tencent::tc_app(
        &inst,
        "tc-keys",
        "CryptoServiceKeyAdministrator",
        "key/*",
        None,
    );
    for key in [&only_k1, &every_key] {
        let mut a = Tc::new(&gw, &inst, key);
        a.ok(
            "UpdateKeyDescription",
            json!({"KeyId": k1, "Description": "mine"}),
        );
        for alias in ["orders", "payments"] {
            assert_eq!(
                a.error("CreateKey", json!({ "Alias": alias })),
                unauthorized(),
                "CreateKey {alias}"
            );
            assert_eq!(
                a.error("UpdateAlias", json!({"KeyId": k1, "Alias": alias})),
                unauthorized(),
                "UpdateAlias {alias}"
            );
        }
    }
    assert_eq!(tc.meta("alias/orders")["KeyId"], orders.as_str());
    assert_eq!(tc.meta(&k1)["Alias"], "k1-name");
    assert_eq!(
        tc.code("DescribeKey", json!({"KeyId": "alias/payments"})),
        "ResourceUnavailable.CmkNotFound"
    );
    let r = tc.ok("ListKeys", json!({}));
    assert_eq!(r["TotalCount"], 2, "no key was made: {r}");

    // With `alias/team-*`, the names `team-...` are its to give.
    let team = tencent::tc_app(
        &inst,
        "tc-team",
        "CryptoServiceKeyAdministrator",
        "key/*,alias/team-*",
        None,
    );
    let mut t = Tc::new(&gw, &inst, &team);
    let team_x = t.create("team-x", "ENCRYPT_DECRYPT");
    assert_eq!(t.meta(&team_x)["Alias"], "team-x");
    assert_eq!(
        t.code("CreateKey", json!({"Alias": "team-x"})),
        "InvalidParameterValue.AliasAlreadyExists",
        "a name it may use, it may learn is taken"
    );
    assert_eq!(
        t.error("CreateKey", json!({"Alias": "other"})),
        unauthorized()
    );
    t.ok("UpdateAlias", json!({"KeyId": team_x, "Alias": "team-y"}));
    assert_eq!(t.meta(&team_x)["Alias"], "team-y");
    assert_eq!(
        t.error("UpdateAlias", json!({"KeyId": team_x, "Alias": "orders"})),
        unauthorized()
    );
    assert_eq!(t.meta(&team_x)["Alias"], "team-y");
    // Renaming K1's alias would take away `k1-name`, a name its policy does not cover.
    assert_eq!(
        t.error("UpdateAlias", json!({"KeyId": k1, "Alias": "team-z"})),
        unauthorized()
    );
    assert_eq!(tc.meta(&k1)["Alias"], "k1-name");
    assert_eq!(
        tc.code("DescribeKey", json!({"KeyId": "alias/team-z"})),
        "ResourceUnavailable.CmkNotFound"
    );
    // A key without an alias gets one of its names.
    let cli_key = inst.create_key();
    t.ok(
        "UpdateAlias",
        json!({"KeyId": cli_key, "Alias": "team-cli"}),
    );
    assert_eq!(tc.meta("alias/team-cli")["KeyId"], cli_key.as_str());
}

#[test]
fn keys_granted_by_alias_are_listed() {
    let inst = Instance::new();
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let owner = admin(&inst, "tc-owner");
    let mut tc = Tc::new(&gw, &inst, &owner);
    let orders = tc.create("orders", "ENCRYPT_DECRYPT");
    tc.create("billing", "ENCRYPT_DECRYPT");
    let team = [
        tc.create("team-a", "ENCRYPT_DECRYPT"),
        tc.create("team-b", "ASYMMETRIC_SIGN_VERIFY_ECC"),
    ];

    let user = tencent::tc_app(
        &inst,
        "tc-orders",
        "CryptoServiceKeyUser",
        "alias/orders",
        None,
    );
    let mut u = Tc::new(&gw, &inst, &user);
    let r = u.ok("ListKeys", json!({}));
    assert_eq!(ids(&r, "Keys"), [orders.as_str()], "{r}");
    assert_eq!(r["TotalCount"], 1);
    let r = u.ok("ListKeyDetail", json!({}));
    assert_eq!(ids(&r, "KeyMetadatas"), [orders.as_str()], "{r}");
    assert_eq!(r["KeyMetadatas"][0]["Alias"], "orders");
    assert_eq!(u.meta("alias/orders")["KeyId"], orders.as_str());

    // A pattern of aliases lists every key one of its aliases matches.
    let teams = tencent::tc_app(
        &inst,
        "tc-teams",
        "CryptoServiceKeyAdministrator",
        "alias/team-*",
        None,
    );
    let mut t = Tc::new(&gw, &inst, &teams);
    let mut listed = ids(&t.ok("ListKeys", json!({})), "Keys");
    listed.sort();
    let mut want = team.to_vec();
    want.sort();
    assert_eq!(listed, want);
    let r = t.ok("ListKeyDetail", json!({"KeyUsage": "ALL"}));
    assert_eq!(r["TotalCount"], 2, "{r}");

    // Once the key is no longer named `orders`, the policy does not show it.
    tc.ok(
        "UpdateAlias",
        json!({"KeyId": orders, "Alias": "orders-v2"}),
    );
    let r = u.ok("ListKeys", json!({}));
    assert_eq!(r["TotalCount"], 0, "{r}");
}
