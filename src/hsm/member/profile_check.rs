//! What a member takes from its HSM profile: its quirks, and its mechanism lists, held
//! against the token's own list each time the member connects.

use super::{lock, Member, MemberProfile};
use crate::config::MemberConfig;
use crate::hsm::profile::{self, mechanisms, GcmIv, Profile, TemplateSupport, Trusted};
use crate::hsm::HsmError;
use crate::hsm::UnwrapTemplate;
use cryptoki::error::Error as CkError;
use std::path::Path;
use std::sync::Mutex;

impl MemberProfile {
    /// What a member using `module` acts on of `profile`.
    pub fn new(profile: &Profile, module: &Path) -> MemberProfile {
        MemberProfile {
            name: profile.name.clone(),
            quirks: profile.quirks.clone(),
            mechanisms: profile.mechanisms.clone(),
            public_working_keys: profile::calls_for(profile, module).public_working_keys,
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
    /// A member of `cfg`, with the settings its configuration leaves to its profile filled
    /// in (`inline_calls`) and what it acts on of its profile; `Down` until it connects.
    pub fn configured(profiles_dir: &Path, cfg: &MemberConfig) -> Result<Member, String> {
        let mut cfg = cfg.clone();
        let loaded = profile::load(profiles_dir, &cfg.profile)
            .map_err(|e| format!("member {}: {e}", cfg.name))?;
        if cfg.inline_calls.is_none() {
            cfg.inline_calls = Some(profile::calls_for(&loaded, &cfg.module).inline);
        }
        for w in configuration_warnings(&cfg.name, cfg.max_sessions, &loaded) {
            tracing::warn!("{w}");
        }
        Ok(Member {
            profile: MemberProfile::new(&loaded, &cfg.module),
            ..Member::new(&cfg)
        })
    }

    /// The name of the member's HSM profile.
    pub fn profile_name(&self) -> &str {
        &self.profile.name
    }

    /// Whether this member can give the domain key to another: its profile does not say the
    /// device is unable to mark a wrapping key trusted.
    pub fn can_give_domain_key(&self) -> bool {
        self.profile.quirks.trusted != Trusted::Unsupported
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
        let mut kept = lock(&self.profile.findings);
        // Logged once, not at every reconnect of the prober.
        for f in findings.iter().filter(|f| !kept.contains(f)) {
            tracing::warn!(member = %self.name, "HSM member contradicts its profile: {f}");
        }
        *kept = findings;
        drop(kept);
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
