//! The RBAC roles a permission policy grants ([`super::policy`]); which operations each
//! role runs is in [`super::operations`].

/// RBAC roles of permission policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `CryptoServiceKeyUser`: cryptographic operations with keys.
    KeyUser,
    /// `CryptoServiceSecretUser`: secrets of the instance.
    SecretUser,
    /// `SecretUser`: GetSecretValue through a shared gateway.
    SharedSecretUser,
    /// `CryptoServiceKeyAdministrator`: key lifecycle (create, enable, disable, rotate,
    /// import, schedule deletion...), for APIs that manage keys as well as use them
    /// (Tencent Cloud's KMS API). Keys it creates are covered by its policy's resources.
    KeyAdministrator,
    /// `CryptoServiceSecretAdministrator`: secret lifecycle (create, update, enable,
    /// disable, delete, restore) as well as what `CryptoServiceSecretUser` grants.
    SecretAdministrator,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::KeyUser,
        Role::SecretUser,
        Role::SharedSecretUser,
        Role::KeyAdministrator,
        Role::SecretAdministrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::KeyUser => "CryptoServiceKeyUser",
            Role::SecretUser => "CryptoServiceSecretUser",
            Role::SharedSecretUser => "SecretUser",
            Role::KeyAdministrator => "CryptoServiceKeyAdministrator",
            Role::SecretAdministrator => "CryptoServiceSecretAdministrator",
        }
    }

    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "RBAC role {s:?} is not one of CryptoServiceKeyUser, CryptoServiceSecretUser, SecretUser, CryptoServiceKeyAdministrator, CryptoServiceSecretAdministrator"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()).unwrap(), r);
        }
        assert!(Role::parse("Admin").is_err());
    }
}
