//! HSM errors and the one table that decides what to do about each PKCS#11 return code.

use crate::error::{ErrorCode, KmsError};
use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

/// An error from the HSM layer. PKCS#11 failures keep the return code and the failing call.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("{member}: {function} returned {rv:?}")]
    Pkcs11 {
        member: String,
        function: Function,
        rv: RvError,
    },
    #[error("{member}: cannot load PKCS#11 module {path}: {message}")]
    ModuleLoad {
        member: String,
        path: String,
        message: String,
    },
    #[error("{member}: no token with {selector} is present")]
    TokenNotFound { member: String, selector: String },
    #[error("{member}: cannot read PIN file {path}: {message}")]
    PinFile {
        member: String,
        path: String,
        message: String,
    },
    #[error("{member}: the domain key {domain_key_id} is not on the token")]
    DomainKeyMissing {
        member: String,
        domain_key_id: String,
    },
    #[error(
        "{member}: key token {key_version_id} does not belong to its key (binding check failed)"
    )]
    TokenBinding {
        member: String,
        key_version_id: String,
    },
    #[error("{member}: the HSM rejected the data ({function} returned {rv:?})")]
    DataRejected {
        member: String,
        function: Function,
        rv: RvError,
    },
    #[error("{member}: {message}")]
    Other { member: String, message: String },
    #[error("no HSM member is available{}", if detail.is_empty() { String::new() } else { format!(" (last error: {detail})") })]
    NoMemberAvailable { detail: String },
    #[error("{member}: no session became free within {secs} s")]
    SessionTimeout { member: String, secs: u64 },
    #[error("{member}: the HSM did not answer within {millis} ms")]
    Deadline { member: String, millis: u64 },
    #[error("no HSM member can do {capability}: {detail}")]
    Unsupported { capability: String, detail: String },
}

impl HsmError {
    /// Wraps a cryptoki error raised on `member`.
    pub fn from_cryptoki(member: &str, err: CkError) -> HsmError {
        match err {
            CkError::Pkcs11(rv, function) => HsmError::Pkcs11 {
                member: member.to_owned(),
                function,
                rv,
            },
            other => HsmError::Other {
                member: member.to_owned(),
                message: other.to_string(),
            },
        }
    }

    /// For calls whose input may be at fault (decrypting, unwrapping stored tokens): a failure
    /// that means "this data is bad" becomes [`HsmError::DataRejected`], which is not retried
    /// elsewhere and does not count against the member. `CKR_GENERAL_ERROR` counts as such
    /// only where the member's profile says it may (`general_error_is_bad_input`); otherwise
    /// it stays a device failure.
    pub fn data_rejected_on(self, general_error_is_bad_input: bool) -> HsmError {
        match self {
            HsmError::Pkcs11 {
                member,
                function,
                rv: RvError::GeneralError,
            } if !general_error_is_bad_input => HsmError::Pkcs11 {
                member,
                function,
                rv: RvError::GeneralError,
            },
            HsmError::Pkcs11 {
                member,
                function,
                rv:
                    rv @ (RvError::GeneralError
                    | RvError::EncryptedDataInvalid
                    | RvError::EncryptedDataLenRange
                    | RvError::WrappedKeyInvalid
                    | RvError::WrappedKeyLenRange
                    | RvError::DataLenRange),
            } => HsmError::DataRejected {
                member,
                function,
                rv,
            },
            other => other,
        }
    }

    /// The PKCS#11 return code, when the error came from a PKCS#11 call.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            HsmError::Pkcs11 { rv, .. } => Some(*rv),
            _ => None,
        }
    }

    /// A short stable name for metrics: the PKCS#11 return code (`DeviceError`,
    /// `SessionHandleInvalid`...) when a call returned one, else the kind of failure.
    pub fn code_name(&self) -> String {
        match self {
            HsmError::Pkcs11 { rv, .. } | HsmError::DataRejected { rv, .. } => {
                crate::metrics::labels::code(&format!("{rv:?}"))
            }
            HsmError::ModuleLoad { .. } => "ModuleLoad".into(),
            HsmError::TokenNotFound { .. } => "TokenNotFound".into(),
            HsmError::PinFile { .. } => "PinFile".into(),
            HsmError::DomainKeyMissing { .. } => "DomainKeyMissing".into(),
            HsmError::TokenBinding { .. } => "TokenBinding".into(),
            HsmError::Other { .. } => "Other".into(),
            HsmError::NoMemberAvailable { .. } => "NoMemberAvailable".into(),
            HsmError::SessionTimeout { .. } => "SessionTimeout".into(),
            HsmError::Deadline { .. } => "Deadline".into(),
            HsmError::Unsupported { .. } => "Unsupported".into(),
        }
    }

    /// What the pool should do about this error.
    pub fn action(&self) -> Action {
        match self {
            HsmError::Pkcs11 { rv, .. } => action_for(*rv),
            HsmError::SessionTimeout { .. } => Action::RetryElsewhere,
            // A call that hangs: the member is not usable until the prober says so.
            HsmError::Deadline { .. } => Action::MarkDown,
            HsmError::NoMemberAvailable { .. } | HsmError::Unsupported { .. } => Action::Fail,
            HsmError::DomainKeyMissing { .. } => Action::MarkDown,
            HsmError::ModuleLoad { .. }
            | HsmError::TokenNotFound { .. }
            | HsmError::PinFile { .. } => Action::MarkDown,
            HsmError::DataRejected { .. } => Action::ClientError,
            HsmError::TokenBinding { .. } | HsmError::Other { .. } => Action::Fail,
        }
    }
}

/// What to do after a PKCS#11 call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The request itself is at fault (bad data, bad parameters): report it, keep the session.
    ClientError,
    /// Transient trouble on this member: try the request on another member.
    RetryElsewhere,
    /// The session is gone: drop it, open a new one, try again.
    ReopenSession,
    /// The token forgot the login: log in again, try again.
    Relogin,
    /// A cached object handle is stale: drop the member's handle cache, try again.
    RefreshHandles,
    /// The device is failing: take the member out of rotation and try another.
    MarkDown,
    /// A bug or an unsupported request: report it, do not retry.
    Fail,
}

/// The table from PKCS#11 return code to action.
///
/// `CKR_GENERAL_ERROR` is ambiguous on SoftHSM2: it also reports a bad GCM tag and an
/// unwrap under the wrong key. Callers that know the data may be at fault (decrypt, unwrap)
/// translate it before consulting this table, as the member's profile says
/// (`[quirks] general_error_on_bad_tag`, [`HsmError::data_rejected_on`]); here it means a
/// device in trouble.
pub fn action_for(rv: RvError) -> Action {
    use RvError::*;
    match rv {
        // The request's data or parameters.
        ArgumentsBad
        | DataInvalid
        | DataLenRange
        | EncryptedDataInvalid
        | EncryptedDataLenRange
        | WrappedKeyInvalid
        | WrappedKeyLenRange
        | BufferTooSmall
        | AttributeValueInvalid
        | AttributeTypeInvalid
        | AttributeReadOnly
        | AttributeSensitive
        | TemplateIncomplete
        | TemplateInconsistent
        | SignatureInvalid
        | SignatureLenRange
        | KeySizeRange
        | MechanismParamInvalid => Action::ClientError,
        // The session was lost.
        SessionHandleInvalid | SessionClosed | OperationActive | OperationNotInitialized => {
            Action::ReopenSession
        }
        // The login was lost.
        UserNotLoggedIn => Action::Relogin,
        // An object handle we cached no longer exists.
        ObjectHandleInvalid
        | KeyHandleInvalid
        | WrappingKeyHandleInvalid
        | UnwrappingKeyHandleInvalid => Action::RefreshHandles,
        // Transient, may succeed elsewhere or later.
        FunctionFailed | HostMemory | DeviceMemory | SessionCount | FunctionCanceled => {
            Action::RetryElsewhere
        }
        // The device (or our access to it) is broken.
        GeneralError
        | DeviceError
        | DeviceRemoved
        | TokenNotPresent
        | TokenNotRecognized
        | CryptokiNotInitialized
        | PinIncorrect
        | PinExpired
        | PinLocked
        | PinInvalid
        | PinLenRange => Action::MarkDown,
        // The request asks for something this member cannot do.
        MechanismInvalid
        | KeyTypeInconsistent
        | KeyFunctionNotPermitted
        | KeyNotWrappable
        | KeyUnextractable
        | FunctionNotSupported
        | CurveNotSupported => Action::Fail,
        _ => Action::Fail,
    }
}

/// How hkmsd reports an HSM failure to callers.
impl From<HsmError> for KmsError {
    fn from(e: HsmError) -> KmsError {
        match e {
            HsmError::NoMemberAvailable { .. } | HsmError::SessionTimeout { .. } => {
                KmsError::new(ErrorCode::HsmUnavailable, e.to_string())
            }
            HsmError::TokenBinding { .. } => KmsError::new(ErrorCode::TokenBinding, e.to_string()),
            HsmError::Unsupported { .. } => {
                KmsError::new(ErrorCode::UnsupportedAlgorithm, e.to_string())
            }
            other => KmsError::new(ErrorCode::HsmError, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_the_failure_classes() {
        let cases = [
            (RvError::DataLenRange, Action::ClientError),
            (RvError::EncryptedDataInvalid, Action::ClientError),
            (RvError::ArgumentsBad, Action::ClientError),
            (RvError::SessionHandleInvalid, Action::ReopenSession),
            (RvError::SessionClosed, Action::ReopenSession),
            (RvError::UserNotLoggedIn, Action::Relogin),
            (RvError::ObjectHandleInvalid, Action::RefreshHandles),
            (RvError::KeyHandleInvalid, Action::RefreshHandles),
            (RvError::FunctionFailed, Action::RetryElsewhere),
            (RvError::DeviceMemory, Action::RetryElsewhere),
            (RvError::DeviceError, Action::MarkDown),
            (RvError::DeviceRemoved, Action::MarkDown),
            (RvError::TokenNotPresent, Action::MarkDown),
            (RvError::GeneralError, Action::MarkDown),
            (RvError::PinIncorrect, Action::MarkDown),
            (RvError::MechanismInvalid, Action::Fail),
            (RvError::KeyNotWrappable, Action::Fail),
        ];
        for (rv, want) in cases {
            assert_eq!(action_for(rv), want, "{rv:?}");
        }
    }

    #[test]
    fn errors_keep_code_and_function() {
        let e = HsmError::from_cryptoki(
            "hsm-a",
            CkError::Pkcs11(RvError::DeviceError, Function::Encrypt),
        );
        assert_eq!(e.rv(), Some(RvError::DeviceError));
        assert_eq!(e.action(), Action::MarkDown);
        let text = e.to_string();
        assert!(text.contains("hsm-a") && text.contains("Encrypt") && text.contains("DeviceError"));
    }

    #[test]
    fn general_error_is_bad_input_only_where_the_profile_allows() {
        let e = || {
            HsmError::from_cryptoki(
                "hsm-a",
                CkError::Pkcs11(RvError::GeneralError, Function::Decrypt),
            )
        };
        assert_eq!(e().data_rejected_on(true).action(), Action::ClientError);
        assert_eq!(e().data_rejected_on(false).action(), Action::MarkDown);
        let bad = HsmError::from_cryptoki(
            "hsm-a",
            CkError::Pkcs11(RvError::EncryptedDataInvalid, Function::Decrypt),
        );
        assert_eq!(bad.data_rejected_on(false).action(), Action::ClientError);
    }

    #[test]
    fn members_out_of_reach_are_unavailable_to_callers() {
        let e = KmsError::from(HsmError::NoMemberAvailable {
            detail: String::new(),
        });
        assert_eq!(e.code, ErrorCode::HsmUnavailable);
        let e = KmsError::from(HsmError::from_cryptoki(
            "hsm-a",
            CkError::Pkcs11(RvError::DeviceError, Function::Encrypt),
        ));
        assert_eq!(e.code, ErrorCode::HsmError);
    }
}
