//! What every check works with: the loaded library, the token's slot, the user PIN (never
//! printed or stored), a session that keeps the token logged in for the run, and the
//! token's mechanism list.

use super::check::{During, Stop, Verdict};
use crate::config::MemberConfig;
use crate::hsm::crypto::keywrap;
use crate::hsm::profile::{self, Quirks};
use crate::hsm::Member;
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// What to certify and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub module: PathBuf,
    pub token_label: String,
    pub pin_file: PathBuf,
    pub so_pin_file: Option<PathBuf>,
    pub second_token: Option<String>,
    /// Library of the second token (default: `module`).
    pub second_module: Option<PathBuf>,
    /// PIN file of the second token (default: the first token's).
    pub second_pin_file: Option<PathBuf>,
    pub profile: Option<String>,
    pub profiles_dir: PathBuf,
    /// How long each throughput figure is measured.
    pub throughput_time: Duration,
    /// Run only these checks (ids or group prefixes); the others are skipped.
    pub only: Vec<String>,
    /// An OpenSSL 3.5 (or later) command that checks ML-DSA and ML-KEM results.
    pub pqc_openssl: Option<PathBuf>,
}

/// A setup problem: the run cannot start (exit code 2).
#[derive(Debug)]
pub struct SetupError(pub String);

/// Reads a PIN file: its first line, trimmed.
pub fn read_pin(path: &Path, what: &str) -> Result<Zeroizing<String>, SetupError> {
    let raw = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| SetupError(format!("cannot read {what} {}: {e}", path.display())))?,
    );
    let pin = Zeroizing::new(raw.lines().next().unwrap_or("").trim().to_owned());
    if pin.is_empty() {
        return Err(SetupError(format!("{what} {} is empty", path.display())));
    }
    Ok(pin)
}

/// The slot holding the token labelled `label`.
pub fn find_token(pkcs11: &Pkcs11, label: &str) -> Result<Slot, SetupError> {
    let slots = pkcs11
        .get_slots_with_token()
        .map_err(|e| SetupError(format!("C_GetSlotList failed: {e}")))?;
    for slot in slots {
        if let Ok(info) = pkcs11.get_token_info(slot) {
            if info.label().trim_end() == label {
                return Ok(slot);
            }
        }
    }
    Err(SetupError(format!(
        "no token labelled {label:?} is present"
    )))
}

/// What [`Ctx::sweep`] found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sweep {
    /// Objects of this run still there (now destroyed).
    pub left: usize,
    /// Objects named after an earlier run (left alone).
    pub earlier: usize,
}

/// The run's shared state.
pub struct Ctx {
    pub opts: Options,
    pub pkcs11: Pkcs11,
    pub slot: Slot,
    pin: Zeroizing<String>,
    /// Keeps the user logged in for the run (login state is per token per process).
    keeper: Option<Session>,
    pub mechanisms: Vec<MechanismType>,
    /// The token's mechanism list with every number it holds (`mechanisms` lacks the ones
    /// cryptoki has no name for, such as `CKM_AES_KEY_WRAP_KWP`).
    pub listed: Vec<cryptoki_sys::CK_MECHANISM_TYPE>,
    /// `hkms-certify-<random>`: names every token object the run creates.
    pub run_id: String,
    /// The quirks of `--profile` (None without one, or when it does not load).
    pub quirks: Option<Quirks>,
    /// Objects the user could see before the run, for the cleanup check.
    pub objects_before: Option<usize>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("token", &self.opts.token_label)
            .field("run_id", &self.run_id)
            .finish()
    }
}

impl Ctx {
    pub fn new(opts: Options) -> Result<Ctx, SetupError> {
        let pin = read_pin(&opts.pin_file, "PIN file")?;
        if let Some(so) = &opts.so_pin_file {
            read_pin(so, "SO PIN file")?;
        }
        let pkcs11 = crate::hsm::module::load(&opts.module)
            .map_err(|e| SetupError(format!("cannot load {}: {e}", opts.module.display())))?;
        let slot = find_token(&pkcs11, &opts.token_label)?;
        if let Some(second) = &opts.second_token {
            if second == &opts.token_label {
                return Err(SetupError(
                    "--second-token names the token under test".into(),
                ));
            }
            match &opts.second_module {
                Some(m) if m != &opts.module => {
                    let other = crate::hsm::module::load(m)
                        .map_err(|e| SetupError(format!("cannot load {}: {e}", m.display())))?;
                    find_token(&other, second)?;
                }
                _ => {
                    find_token(&pkcs11, second)?;
                }
            }
            read_pin(
                &opts
                    .second_pin_file
                    .clone()
                    .unwrap_or_else(|| opts.pin_file.clone()),
                "PIN file of the second token",
            )?;
        }
        let mechanisms = pkcs11.get_mechanism_list(slot).unwrap_or_default();
        let listed = keywrap::mechanism_list(&opts.module, slot).unwrap_or_default();
        let run_id = format!("hkms-certify-{}", uuid::Uuid::new_v4().simple());
        let quirks =
            opts.profile
                .as_ref()
                .and_then(|name| match profile::load(&opts.profiles_dir, name) {
                    Ok(p) => Some(p.quirks),
                    Err(e) => {
                        eprintln!("hkms certify: warning: its quirks are not used: {e}");
                        None
                    }
                });
        Ok(Ctx {
            opts,
            pkcs11,
            slot,
            pin,
            keeper: None,
            mechanisms,
            listed,
            run_id,
            quirks,
            objects_before: None,
        })
    }

    /// The user PIN.
    pub fn pin(&self) -> AuthPin {
        AuthPin::from(self.pin.as_str().to_owned())
    }

    /// A PIN of the same length that is not the user PIN.
    pub fn wrong_pin(&self) -> AuthPin {
        let mut chars: Vec<char> = self.pin.chars().collect();
        if let Some(last) = chars.last_mut() {
            *last = if *last == '0' { '1' } else { '0' };
        }
        AuthPin::from(chars.into_iter().collect::<String>())
    }

    /// A new read-write session on the token. Session objects made in it vanish when it is
    /// dropped (closed).
    pub fn session(&self) -> Result<Session, Stop> {
        self.pkcs11
            .open_rw_session(self.slot)
            .during("opening a session")
    }

    /// Logs the user in (once per process) and keeps a session open so that the login
    /// lasts. Safe to call again after sessions were closed or the user logged out.
    pub fn login(&mut self) -> Result<(), Stop> {
        let usable = self
            .keeper
            .as_ref()
            .is_some_and(|s| s.get_session_info().is_ok());
        if !usable {
            // A session whose handle the library forgot: do not close it again.
            if let Some(s) = self.keeper.take() {
                std::mem::forget(s);
            }
            self.keeper = Some(self.session()?);
        }
        let keeper = self.keeper.as_ref().expect("just opened");
        match keeper.login(UserType::User, Some(&self.pin())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(e) => Err(e).during("C_Login as the user"),
        }
    }

    /// Forgets the login session after something closed every session underneath it.
    pub fn forget_sessions(&mut self) {
        if let Some(s) = self.keeper.take() {
            std::mem::forget(s);
        }
    }

    /// Whether the token lists `mechanism`. AES key wrap with padding counts under either
    /// of its numbers, as hkms uses either ([`keywrap`]).
    pub fn has(&self, mechanism: MechanismType) -> bool {
        if mechanism == MechanismType::AES_KEY_WRAP_PAD {
            return self.key_wrap_pad().is_some();
        }
        self.mechanisms.contains(&mechanism)
    }

    /// The number under which the token offers AES key wrap with padding (RFC 5649).
    pub fn key_wrap_pad(&self) -> Option<MechanismType> {
        keywrap::offered(&self.listed)
    }

    /// Skips the check unless the token lists every one of `mechanisms`.
    pub fn require(&self, mechanisms: &[MechanismType]) -> Result<(), Stop> {
        let missing: Vec<String> = mechanisms
            .iter()
            .filter(|m| !self.has(**m))
            .map(|m| m.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Stop(Verdict::skip(format!(
                "the token does not list {}",
                missing.join(", ")
            ))))
        }
    }

    /// A member of hkms's HSM pool on the token under test, built as hkmsd builds one (with
    /// `--profile`, whose quirks it then acts on), connected.
    pub fn member(&self, name: &str) -> Result<Member, Stop> {
        let cfg = self.member_config(name, &self.opts.token_label, &self.opts.pin_file);
        let m = match &self.opts.profile {
            Some(_) => Member::configured(&self.opts.profiles_dir, &cfg)
                .map_err(|e| Stop(Verdict::fail(e)))?,
            None => Member::new(&cfg),
        };
        m.connect(None).during("connecting an hkms member")?;
        Ok(m)
    }

    /// A member on the second token. On another library than the token under test's, it
    /// is built without a profile (`--profile` describes the token under test).
    pub fn second_member(&self, name: &str) -> Result<Member, Stop> {
        let label = self.opts.second_token.clone().unwrap_or_default();
        let mut cfg = self.member_config(name, &label, &self.second_pin_file());
        let m = match (&self.opts.second_module, &self.opts.profile) {
            (Some(module), _) if module != &self.opts.module => {
                cfg.module = module.clone();
                Member::new(&cfg)
            }
            (_, Some(_)) => Member::configured(&self.opts.profiles_dir, &cfg)
                .map_err(|e| Stop(Verdict::fail(e)))?,
            (_, None) => Member::new(&cfg),
        };
        m.connect(None).during("connecting an hkms member")?;
        Ok(m)
    }

    fn member_config(&self, name: &str, label: &str, pin_file: &Path) -> MemberConfig {
        MemberConfig {
            name: name.to_owned(),
            module: self.opts.module.clone(),
            token_label: Some(label.to_owned()),
            token_serial: None,
            pin_file: pin_file.to_path_buf(),
            profile: self
                .opts
                .profile
                .clone()
                .unwrap_or_else(|| "softhsm2".into()),
            max_sessions: 4,
            inline_calls: Some(false),
        }
    }

    /// Every object the logged-in user can see on the token.
    pub fn visible_objects(&self, session: &Session) -> Result<Vec<ObjectHandle>, Stop> {
        session.find_objects(&[]).during("C_FindObjects")
    }

    /// Token objects left from this run (found by the run id in label or id), destroying
    /// them; and those of earlier runs (another run id), which are only counted: a run that
    /// was killed cannot clean up, and what it left is for the operator to judge.
    pub fn sweep(&self, session: &Session) -> Result<Sweep, Stop> {
        let mut swept = Sweep::default();
        for h in self.visible_objects(session)? {
            let attrs = session
                .get_attributes(
                    h,
                    &[
                        cryptoki::object::AttributeType::Label,
                        cryptoki::object::AttributeType::Id,
                    ],
                )
                .unwrap_or_default();
            let named = |part: &str| {
                attrs.iter().any(|a| match a {
                    Attribute::Label(v) | Attribute::Id(v) => {
                        String::from_utf8_lossy(v).contains(part)
                    }
                    _ => false,
                })
            };
            if named(&self.run_id) {
                swept.left += 1;
                let _ = session.destroy_object(h);
            } else if named("hkms-certify-") {
                swept.earlier += 1;
            }
        }
        Ok(swept)
    }

    /// How long each throughput measurement runs.
    pub fn throughput_time(&self) -> Duration {
        self.opts.throughput_time
    }

    /// The PIN file of the second token.
    pub fn second_pin_file(&self) -> PathBuf {
        self.opts
            .second_pin_file
            .clone()
            .unwrap_or_else(|| self.opts.pin_file.clone())
    }
}
