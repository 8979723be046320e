//! One HSM of the cluster: its token, its logged-in session, a bounded pool of operation
//! sessions, the domain key handle and a cache of unwrapped key versions.

mod handles;
mod profile_check;

use super::crypto;
use super::error::HsmError;
use super::module;
use super::objects::{UnwrapTemplate, VersionKeys};
use super::profile::{Mechanisms, Quirks};
use crate::config::MemberConfig;
use crate::metrics::histogram::{AtomicHistogram, HistogramSnapshot};
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How a token is found. Slot numbers are never used: they change when tokens are
/// re-initialised.
#[derive(Debug, Clone)]
pub enum TokenSelector {
    Label(String),
    Serial(String),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::Label(l) => write!(f, "label {l:?}"),
            TokenSelector::Serial(s) => write!(f, "serial {s:?}"),
        }
    }
}

/// Health of a member as the pool sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Connected, logged in, holds the domain key (or the instance is not initialised yet).
    Up = 0,
    /// Not usable; the prober tries to reconnect it.
    Down = 1,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "Up",
            Health::Down => "Down",
        }
    }
}

/// The parts of a member's HSM profile the member acts on ([`profile_check`]).
#[derive(Debug, Default)]
pub struct MemberProfile {
    /// The profile's name (empty for a member built without one).
    pub name: String,
    pub quirks: Quirks,
    pub mechanisms: Mechanisms,
    /// Working keys are unwrapped as public session objects (`[calls]` of the profile).
    pub public_working_keys: bool,
    /// What the last connection found against the profile (one line each).
    findings: Mutex<Vec<String>>,
}

/// What exists while a member is connected. Replaced as a whole on reconnect.
struct Connection {
    ctx: Pkcs11,
    slot: Slot,
    /// Keeps the token logged in for this process; unwrapped key versions live in it.
    login: Session,
    domain_key: Option<ObjectHandle>,
    domain_key_id: Option<String>,
    /// Key version id -> the key id it was checked for and the mode keys of that version,
    /// session objects in `login`. A hit needs both ids to match: a token is only ever
    /// served as the key it was checked for.
    handles: HashMap<String, (String, VersionKeys)>,
}

/// One configured HSM.
pub struct Member {
    pub name: String,
    pub selector: TokenSelector,
    module_path: PathBuf,
    pin_file: PathBuf,
    pub(super) permits: Arc<Semaphore>,
    conn: Mutex<Option<Connection>>,
    /// Sessions not in use; every one belongs to the current connection.
    pub(super) idle: Mutex<Vec<Session>>,
    /// Bumped on every reconnect so sessions of an old connection are never reused.
    pub(super) generation: AtomicU64,
    health: AtomicU8,
    /// Set by an operator: no new requests, in-flight ones finish.
    draining: AtomicBool,
    /// A prober thread is working on this member (it may be stuck in a hung call).
    probing: AtomicBool,
    /// Failures in a row that did not by themselves mark the member down.
    consecutive_failures: AtomicU32,
    max_sessions: usize,
    operations: AtomicU64,
    errors: AtomicU64,
    /// Sum of successful operation latencies, in microseconds.
    busy_micros: AtomicU64,
    /// Latencies of successful operations, for metrics.
    latency: AtomicHistogram,
    /// Failures by PKCS#11 return code (or kind of failure), for metrics. Written only
    /// when an operation fails.
    error_codes: Mutex<BTreeMap<String, u64>>,
    /// When an operation on this member last finished (ms since [`clock`]).
    last_progress_ms: AtomicU64,
    /// Number of cached unwrapped key versions (readable without the connection lock,
    /// which a hung HSM call may hold).
    cached: AtomicU64,
    /// Whether this member's domain key carries hkms's unwrap template ([`UnwrapTemplate`]).
    unwrap_template: AtomicU8,
    last_error: Mutex<String>,
    /// The token's mechanisms (`CKM_*`), read when the member connects; empty before.
    mechanisms: Mutex<Vec<cryptoki_sys::CK_MECHANISM_TYPE>>,
    /// What the member's profile says of the device: quirks, mechanisms, and what the last
    /// connection found against them.
    profile: MemberProfile,
    config: MemberConfig,
}

/// What metrics read of a member: failures by code and the latency histogram.
#[derive(Debug, Clone)]
pub struct MemberMetrics {
    pub errors: Vec<(String, u64)>,
    pub latency: HistogramSnapshot,
}

/// A snapshot of a member for status output.
#[derive(Debug, Clone)]
pub struct MemberStats {
    pub state: &'static str,
    pub sessions_in_use: usize,
    pub max_sessions: usize,
    pub operations: u64,
    pub errors: u64,
    pub last_error: String,
    pub mean_latency_micros: u64,
    pub cached_keys: usize,
    pub unwrap_template: UnwrapTemplate,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("selector", &self.selector)
            .field("health", &self.health())
            .finish()
    }
}

/// Milliseconds since the first use of the member clock.
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Member {
    /// A member in the `Down` state; [`Member::connect`] brings it up.
    pub fn new(cfg: &MemberConfig) -> Member {
        let selector = match (&cfg.token_label, &cfg.token_serial) {
            (Some(l), _) => TokenSelector::Label(l.clone()),
            (None, Some(s)) => TokenSelector::Serial(s.clone()),
            (None, None) => TokenSelector::Label(cfg.name.clone()),
        };
        Member {
            name: cfg.name.clone(),
            selector,
            module_path: cfg.module.clone(),
            pin_file: cfg.pin_file.clone(),
            permits: Arc::new(Semaphore::new(cfg.max_sessions)),
            conn: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            health: AtomicU8::new(Health::Down as u8),
            draining: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            consecutive_failures: AtomicU32::new(0),
            max_sessions: cfg.max_sessions,
            operations: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
            latency: AtomicHistogram::default(),
            error_codes: Mutex::new(BTreeMap::new()),
            cached: AtomicU64::new(0),
            unwrap_template: AtomicU8::new(UnwrapTemplate::Unknown as u8),
            last_progress_ms: AtomicU64::new(now_ms()),
            last_error: Mutex::new(String::new()),
            mechanisms: Mutex::new(Vec::new()),
            profile: MemberProfile::default(),
            config: cfg.clone(),
        }
    }

    /// Whether working keys are unwrapped as public session objects (its profile's
    /// `[calls] public_working_keys`, for an in-process software token).
    pub fn public_working_keys(&self) -> bool {
        self.profile.public_working_keys
    }

    /// The profile quirks this member applies.
    pub fn quirks(&self) -> &Quirks {
        &self.profile.quirks
    }

    /// The configuration this member was built from.
    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    /// Whether the pool may send new requests here.
    pub fn accepts_requests(&self) -> bool {
        self.health() == Health::Up && !self.draining.load(Ordering::SeqCst)
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Claims the right to probe this member; false if a probe is already running.
    pub fn begin_probe(&self) -> bool {
        !self.probing.swap(true, Ordering::SeqCst)
    }

    pub fn end_probe(&self) {
        self.probing.store(false, Ordering::SeqCst);
    }

    /// Counts a failure that does not by itself mean the device is broken; returns the
    /// number of such failures in a row.
    pub fn note_failure(&self) -> u32 {
        self.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn snapshot(&self) -> MemberStats {
        let operations = self.operations.load(Ordering::Relaxed);
        MemberStats {
            state: match (self.health(), self.is_draining()) {
                (Health::Down, _) => "Down",
                (Health::Up, true) => "Draining",
                (Health::Up, false) => "Up",
            },
            sessions_in_use: self.sessions_in_use(),
            max_sessions: self.max_sessions,
            operations,
            errors: self.errors.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
            mean_latency_micros: self
                .busy_micros
                .load(Ordering::Relaxed)
                .checked_div(operations)
                .unwrap_or(0),
            cached_keys: self.cached.load(Ordering::Relaxed) as usize,
            unwrap_template: match self.unwrap_template.load(Ordering::Relaxed) {
                1 => UnwrapTemplate::Enforced,
                2 => UnwrapTemplate::Absent,
                _ => UnwrapTemplate::Unknown,
            },
        }
    }

    /// Wraps a cryptoki error raised on this member.
    pub fn err(&self, e: CkError) -> HsmError {
        HsmError::from_cryptoki(&self.name, e)
    }

    fn read_pin(&self) -> Result<AuthPin, HsmError> {
        let raw =
            zeroize::Zeroizing::new(std::fs::read_to_string(&self.pin_file).map_err(|e| {
                HsmError::PinFile {
                    member: self.name.clone(),
                    path: self.pin_file.display().to_string(),
                    message: e.to_string(),
                }
            })?);
        let pin = raw.lines().next().unwrap_or("").trim();
        if pin.is_empty() {
            return Err(HsmError::PinFile {
                member: self.name.clone(),
                path: self.pin_file.display().to_string(),
                message: "the file is empty".into(),
            });
        }
        Ok(AuthPin::from(pin.to_owned()))
    }

    fn find_slot(&self, ctx: &Pkcs11) -> Result<Slot, HsmError> {
        let mut unreadable = None;
        for slot in ctx.get_slots_with_token().map_err(|e| self.err(e))? {
            let info = match ctx.get_token_info(slot) {
                Ok(info) => info,
                Err(e) => {
                    unreadable = Some(e);
                    continue;
                }
            };
            let matches = match &self.selector {
                TokenSelector::Label(l) => info.label().trim_end() == l,
                TokenSelector::Serial(s) => info.serial_number().trim_end() == s,
            };
            if matches {
                return Ok(slot);
            }
        }
        // A token we could not read may be ours: its error says more than "not found".
        Err(match unreadable {
            Some(e) => self.err(e),
            None => HsmError::TokenNotFound {
                member: self.name.clone(),
                selector: self.selector.to_string(),
            },
        })
    }

    /// (Re)connects: loads the library (once per process), finds the token, opens the
    /// long-lived session and logs in, and looks up the domain key when one is named.
    /// Blocking; call from a blocking thread.
    pub fn connect(&self, domain_key_id: Option<&str>) -> Result<(), HsmError> {
        self.health.store(Health::Down as u8, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Old sessions and handles belong to the previous connection. They are taken out of
        // their locks before being closed: closing makes PKCS#11 calls, which may hang.
        let old_sessions = std::mem::take(&mut *lock(&self.idle));
        let old_conn = lock(&self.conn).take();
        self.cached.store(0, Ordering::Relaxed);
        drop(old_sessions);
        drop(old_conn);

        let result = self.open_connection(domain_key_id);
        match result {
            Ok(conn) => {
                *lock(&self.conn) = Some(conn);
                self.consecutive_failures.store(0, Ordering::SeqCst);
                self.health.store(Health::Up as u8, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                self.record_error(&e);
                Err(e)
            }
        }
    }

    fn open_connection(&self, domain_key_id: Option<&str>) -> Result<Connection, HsmError> {
        let pin = self.read_pin()?;
        let ctx = module::load(&self.module_path).map_err(|message| HsmError::ModuleLoad {
            member: self.name.clone(),
            path: self.module_path.display().to_string(),
            message,
        })?;
        let slot = self.find_slot(&ctx)?;
        if let Ok(list) = super::ffi::mechanism_list(&self.module_path, slot) {
            self.check_mechanisms(&list)?;
            *lock(&self.mechanisms) = list;
        }
        let login = ctx.open_rw_session(slot).map_err(|e| self.err(e))?;
        match login.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(self.err(e)),
        }
        let domain_key = match domain_key_id {
            Some(id) => Some(
                crypto::find_domain_key(&login, id)
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| HsmError::DomainKeyMissing {
                        member: self.name.clone(),
                        domain_key_id: id.to_owned(),
                    })?,
            ),
            None => None,
        };
        if let Some(dk) = domain_key {
            self.note_unwrap_template(&login, dk);
        }
        Ok(Connection {
            ctx,
            slot,
            login,
            domain_key,
            domain_key_id: domain_key_id.map(str::to_owned),
            handles: HashMap::new(),
        })
    }

    /// Logs in again after the token forgot the login. A logout destroys private session
    /// objects and may renumber private token objects, so the handle cache is emptied and the
    /// domain key looked up again.
    pub fn relogin(&self) -> Result<(), HsmError> {
        let pin = self.read_pin()?;
        let mut conn = lock(&self.conn);
        let conn = conn.as_mut().ok_or_else(|| self.not_connected())?;
        match conn.login.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            // The login session itself is gone (every session of the token was closed, as
            // C_CloseAllSessions or a device reset does): open a new one and log in there.
            Err(CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _)) => {
                let fresh = conn
                    .ctx
                    .open_rw_session(conn.slot)
                    .map_err(|e| self.err(e))?;
                match fresh.login(UserType::User, Some(&pin)) {
                    Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                    Err(e) => return Err(self.err(e)),
                }
                // Not closed: the library may already have given its handle to a new session.
                std::mem::forget(std::mem::replace(&mut conn.login, fresh));
            }
            Err(e) => return Err(self.err(e)),
        }
        conn.handles.clear();
        self.cached.store(0, Ordering::Relaxed);
        if let Some(id) = &conn.domain_key_id {
            conn.domain_key = Some(
                crypto::find_domain_key(&conn.login, id)
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| HsmError::DomainKeyMissing {
                        member: self.name.clone(),
                        domain_key_id: id.clone(),
                    })?,
            );
        }
        Ok(())
    }

    pub(super) fn not_connected(&self) -> HsmError {
        HsmError::Other {
            member: self.name.clone(),
            message: "not connected".into(),
        }
    }

    pub fn health(&self) -> Health {
        if self.health.load(Ordering::SeqCst) == Health::Up as u8 {
            Health::Up
        } else {
            Health::Down
        }
    }

    /// Takes the member out of rotation until the prober reconnects it.
    pub fn mark_down(&self, why: &HsmError) {
        self.record_error(why);
        if self.health.swap(Health::Down as u8, Ordering::SeqCst) == Health::Up as u8 {
            tracing::warn!(member = %self.name, error = %why, "HSM member marked down");
        }
    }

    pub fn record_error(&self, e: &HsmError) {
        self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_error) = e.to_string();
        *lock(&self.error_codes).entry(e.code_name()).or_insert(0) += 1;
    }

    /// Failures by code and operation latencies, for metrics.
    pub fn metrics(&self) -> MemberMetrics {
        MemberMetrics {
            errors: lock(&self.error_codes)
                .iter()
                .map(|(c, n)| (c.clone(), *n))
                .collect(),
            latency: self.latency.snapshot(),
        }
    }

    pub fn record_operation(&self, took: Duration) {
        self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
        self.operations.fetch_add(1, Ordering::Relaxed);
        self.busy_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.latency.observe(took);
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    pub fn last_error(&self) -> String {
        lock(&self.last_error).clone()
    }

    /// Runs `f` in the long-lived logged-in session. Used for objects that must outlive
    /// pooled sessions (unwrapped key versions) and for instance ceremonies.
    pub fn with_login_session<T>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        let conn = lock(&self.conn);
        let conn = conn.as_ref().ok_or_else(|| self.not_connected())?;
        f(&conn.login)
    }

    /// Opens a new session on this member's token (not pooled; for ceremonies).
    pub fn open_session(&self) -> Result<Session, HsmError> {
        let (ctx, slot) = {
            let conn = lock(&self.conn);
            let conn = conn.as_ref().ok_or_else(|| self.not_connected())?;
            (conn.ctx.clone(), conn.slot)
        };
        ctx.open_rw_session(slot).map_err(|e| self.err(e))
    }

    /// The domain key on this member.
    pub fn domain_key(&self) -> Result<ObjectHandle, HsmError> {
        let conn = lock(&self.conn);
        let conn = conn.as_ref().ok_or_else(|| self.not_connected())?;
        conn.domain_key.ok_or_else(|| HsmError::Other {
            member: self.name.clone(),
            message: "the instance is not initialised".into(),
        })
    }

    /// Records the domain key after `hkms init` created or received it.
    pub fn set_domain_key(&self, id: &str, handle: ObjectHandle) -> Result<(), HsmError> {
        let mut conn = lock(&self.conn);
        let conn = conn.as_mut().ok_or_else(|| self.not_connected())?;
        conn.domain_key = Some(handle);
        conn.domain_key_id = Some(id.to_owned());
        self.note_unwrap_template(&conn.login, handle);
        Ok(())
    }

    /// Reads back whether the domain key carries its unwrap template, for status output.
    fn note_unwrap_template(&self, session: &Session, domain_key: ObjectHandle) {
        let state = match crypto::domain_key_enforces_unwrap_template(
            &self.module_path,
            session,
            domain_key,
        ) {
            Ok(true) => UnwrapTemplate::Enforced,
            Ok(false) => UnwrapTemplate::Absent,
            Err(e) => {
                tracing::warn!(member = %self.name, "cannot read the domain key's unwrap template: {e}");
                UnwrapTemplate::Unknown
            }
        };
        if state == UnwrapTemplate::Absent {
            tracing::warn!(
                member = %self.name,
                profile = %self.profile.name,
                profile_says = ?self.profile.quirks.unwrap_template,
                "the domain key has no unwrap template: this HSM does not stop the PIN holder \
                 from unwrapping a key token into a readable key (see the member's profile)"
            );
        }
        self.check_unwrap_template(state);
        self.unwrap_template.store(state as u8, Ordering::Relaxed);
    }

    /// The PKCS#11 library this member is reached through.
    pub fn module_path(&self) -> &Path {
        &self.module_path
    }

    /// Every session is busy and nothing has finished for much longer than an operation
    /// usually takes: the member looks hung (its deadline has not passed yet).
    pub fn looks_stalled(&self) -> bool {
        if self.has_free_session() {
            return false;
        }
        let ops = self.operations.load(Ordering::Relaxed).max(1);
        let mean_ms = self.busy_micros.load(Ordering::Relaxed) / ops / 1000;
        let quiet = now_ms().saturating_sub(self.last_progress_ms.load(Ordering::Relaxed));
        quiet > (mean_ms * 20).max(200)
    }

    /// Whether calls run on the requesting async worker rather than a blocking thread.
    pub fn inline_calls(&self) -> bool {
        self.config.inline_calls == Some(true)
    }

    /// Whether a session can be lent without waiting.
    pub fn has_free_session(&self) -> bool {
        self.permits.available_permits() > 0
    }

    /// Number of sessions lent out right now (including any stuck in a hung call).
    pub fn sessions_in_use(&self) -> usize {
        self.max_sessions
            .saturating_sub(self.permits.available_permits())
    }
}
