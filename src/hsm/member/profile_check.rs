//! What a member takes from its HSM profile: its quirks, and its mechanism lists, held
//! against the token's own list each time the member connects.

use super::{lock, Member};
use crate::hsm::profile::{self, mechanisms, GcmIv, Mechanisms, Profile, Quirks, TemplateSupport};
use crate::hsm::HsmError;
use crate::hsm::UnwrapTemplate;
use cryptoki::error::Error as CkError;
use std::sync::Mutex;

/// The parts of a member's profile the member acts on.
#[derive(Debug, Default)]
pub struct MemberProfile {
    /// The profile's name (empty for a member built without one).
    pub name: String,
    pub quirks: Quirks,
    pub mechanisms: Mechanisms,
    /// What the last connection found against the profile (one line each).
    findings: Mutex<Vec<String>>,
}

impl MemberProfile {
    pub fn new(profile: &Profile) -> MemberProfile {
        MemberProfile {
            name: profile.name.clone(),
            quirks: profile.quirks.clone(),
            mechanisms: profile.mechanisms.clone(),
            findings: Mutex::new(Vec::new()),
        }
    }
}

/// Warnings about a member's configuration against its profile, logged when it is built.
pub fn configuration_warnings(member: &str, max_sessions: usize, profile: &Profile) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(limit) = profile.login.max_sessions {
        if max_sessions as u64 > limit {
            out.push(format!(
                "member {member}: max_sessions = {max_sessions}, but profile {:?} says the device \
                 allows {limit}",
                profile.name
            ));
        }
    }
    match profile.quirks.gcm_iv {
        GcmIv::Device | GcmIv::DeviceInFipsMode => out.push(format!(
            "member {member}: profile {:?} says the device may choose AES-GCM IVs itself; hkms \
             supplies its own and refuses an encryption made under another IV",
            profile.name
        )),
        GcmIv::Caller | GcmIv::Unknown => {}
    }
    out
}

impl Member {
    /// The name of the member's HSM profile.
    pub fn profile_name(&self) -> &str {
        &self.profile.name
    }

    /// What the member's last connection found against its profile's mechanism lists.
    pub fn profile_findings(&self) -> Vec<String> {
        lock(&self.profile.findings).clone()
    }

    /// Holds the token's mechanism list against the profile. Every difference is logged and
    /// kept for `hkms status`; a required mechanism missing refuses the member (it stays
    /// down, and the prober tries again).
    pub(super) fn check_mechanisms(
        &self,
        token: &[cryptoki_sys::CK_MECHANISM_TYPE],
    ) -> Result<(), HsmError> {
        let comparison = mechanisms::compare(&self.profile.mechanisms, token);
        let findings = comparison.findings(&self.profile.name);
        for f in &findings {
            tracing::warn!(member = %self.name, "HSM member contradicts its profile: {f}");
        }
        *lock(&self.profile.findings) = findings;
        if comparison.missing_required.is_empty() {
            return Ok(());
        }
        Err(HsmError::Other {
            member: self.name.clone(),
            message: format!(
                "refused: its token lacks {}, which HSM profile {:?} requires",
                comparison.missing_required.join(", "),
                self.profile.name
            ),
        })
    }

    /// Holds what the domain key's unwrap template was read back as against the profile: a
    /// profile that promises an enforced template on a device whose domain key has none is
    /// reported.
    pub(super) fn check_unwrap_template(&self, state: UnwrapTemplate) {
        if state != UnwrapTemplate::Absent
            || self.profile.quirks.unwrap_template != TemplateSupport::Enforced
        {
            return;
        }
        let finding = format!(
            "profile {:?} says the unwrap template is enforced, but the domain key has none",
            self.profile.name
        );
        tracing::warn!(member = %self.name, "HSM member contradicts its profile: {finding}");
        let mut findings = lock(&self.profile.findings);
        if !findings.contains(&finding) {
            findings.push(finding);
        }
    }

    /// A failure of a call whose input may be at fault (decrypting, unwrapping stored
    /// tokens), read as the member's profile says ([`HsmError::data_rejected_on`]).
    pub fn data_err(&self, e: CkError) -> HsmError {
        self.err(e)
            .data_rejected_on(self.profile.quirks.general_error_is_bad_input())
    }
}

/// The profile of a member configured with `name`, loaded from `profiles_dir`.
pub fn load(profiles_dir: &std::path::Path, member: &str, name: &str) -> Result<Profile, String> {
    profile::load(profiles_dir, name).map_err(|e| format!("member {member}: {e}"))
}
