//! The two services of Tencent Cloud API 3.0 that hkms serves, and the API versions that
//! name them.

/// The two services of Tencent's API that hkms serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Kms,
    Ssm,
}

impl Service {
    /// The service an `X-TC-Version` names.
    pub fn of_version(version: &str) -> Option<Service> {
        match version {
            "2019-01-18" => Some(Service::Kms),
            "2019-09-23" => Some(Service::Ssm),
            _ => None,
        }
    }

    /// The service's name in a credential scope (`<date>/kms/tc3_request`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Kms => "kms",
            Service::Ssm => "ssm",
        }
    }
}
