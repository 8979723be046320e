//! The PKCS#11 side: the exported `C_GetFunctionList`, one forwarding wrapper
//! per v2.40 function, and the per-token fault state.
//!
//! Every wrapper follows the same pattern:
//!
//! 1. find the token the call concerns (slot id → label through the real
//!    `C_GetTokenInfo`, or virtual session handle → the session's token);
//! 2. [`check`] the token's control file and apply the fault (sleep, fail,
//!    block, or reset after a `dead` period);
//! 3. call the real module with the arguments unchanged, except that session
//!    handles are translated from ours (virtual) to the real module's.
//!
//! `hide_mechanisms` is applied in step 2 for the functions given a mechanism
//! (`C_GetMechanismInfo`, `C_*Init`, key generation, wrapping, derivation) and
//! after step 3 by `C_GetMechanismList`, which filters the real module's list.
//!
//! Session handles are virtual (a process-wide counter that never reuses a
//! value) so that handles invalidated by a simulated device reset stay
//! invalid even when the real module reuses its own handle numbers.

// The wrappers keep the PKCS#11 function names.
#![allow(non_snake_case)]

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use cryptoki_sys::*;

use crate::control::{
    fault_file, FaultSpec, Mode, DEFAULT_REAL_MODULE, ENV_FAULT_DIR, ENV_LOG, ENV_REAL_MODULE,
};
use crate::mech::mechanism_name;
use crate::rv::rv_name;

/// How often a hung call re-reads its control file.
const HANG_POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Configuration and the real module
// ---------------------------------------------------------------------------

/// Settings read from the environment once, on first use.
struct Config {
    /// `$HKMS_FAULT_DIR`; `None` disables fault injection (pure forwarding).
    dir: Option<PathBuf>,
    /// `$HKMS_FAULT_LOG`.
    log: bool,
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config {
        dir: std::env::var_os(ENV_FAULT_DIR)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
        log: std::env::var_os(ENV_LOG).is_some_and(|v| !v.is_empty() && v != "0"),
    })
}

macro_rules! log {
    ($($arg:tt)*) => {
        if config().log {
            eprintln!("hkms-fault-pkcs11[{}]: {}", std::process::id(), format_args!($($arg)*));
        }
    };
}

/// The loaded real module. Never unloaded: its function pointers are used
/// for the life of the process.
struct Real {
    _lib: libloading::Library,
    list: CK_FUNCTION_LIST,
}

/// Loads the real module (once) and returns its function list.
fn real() -> Result<&'static CK_FUNCTION_LIST, CK_RV> {
    static REAL: OnceLock<Result<Real, String>> = OnceLock::new();
    let loaded = REAL.get_or_init(|| {
        let path = std::env::var_os(ENV_REAL_MODULE)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_REAL_MODULE.into());
        let result = load_real(Path::new(&path));
        if let Err(e) = &result {
            eprintln!(
                "hkms-fault-pkcs11: cannot load {}: {e}",
                path.to_string_lossy()
            );
        }
        result
    });
    match loaded {
        Ok(r) => Ok(&r.list),
        Err(_) => Err(CKR_GENERAL_ERROR),
    }
}

fn load_real(path: &Path) -> Result<Real, String> {
    type GetFunctionList = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;
    // SAFETY: loading a PKCS#11 module runs its library initialisers, which
    // is exactly what using it requires.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // SAFETY: `C_GetFunctionList` has this signature in every PKCS#11 module.
    let get =
        unsafe { lib.get::<GetFunctionList>(b"C_GetFunctionList\0") }.map_err(|e| e.to_string())?;
    let mut list_ptr: *mut CK_FUNCTION_LIST = ptr::null_mut();
    // SAFETY: valid out-pointer; the module fills it with a pointer to its
    // static function list.
    let rv = unsafe { get(&mut list_ptr) };
    if rv != CKR_OK || list_ptr.is_null() {
        return Err(format!("C_GetFunctionList returned {}", rv_name(rv)));
    }
    // SAFETY: non-null and points to the module's (static) function list; we
    // copy the table of function pointers, which stay valid while `lib` is
    // loaded (forever).
    let list = unsafe { *list_ptr };
    Ok(Real { _lib: lib, list })
}

// ---------------------------------------------------------------------------
// Process-wide state
// ---------------------------------------------------------------------------

/// A session opened through this module.
struct Session {
    /// The real module's handle.
    real: CK_SESSION_HANDLE,
    /// Slot it was opened on.
    slot: CK_SLOT_ID,
    /// Label of the token it was opened on (`None`: unknown, never faulted).
    label: Option<String>,
}

/// Identity of one version of a control file (changes on every rewrite).
type FileKey = (u64, u64, i64, i64, i64, i64, u64);

/// Fault state and counters of one token (by label).
#[derive(Default)]
struct Token {
    /// Version of the control file `spec` was read from (`None`: no file).
    file_key: Option<FileKey>,
    /// Current fault (off when there is no file).
    spec: FaultSpec,
    /// Faults injected under `count` for this file version.
    used: u64,
    /// A call saw `mode = dead` and the reset has not happened yet.
    dead: bool,
    /// Calls forwarded to the real module.
    forwarded: u64,
    /// Calls answered with an injected fault (a hung call counts once).
    injected: u64,
}

impl Token {
    /// Re-reads the control file if it changed since last time.
    fn refresh(&mut self, path: Option<&Path>, label: &str) {
        let Some(path) = path else { return };
        match fs::metadata(path) {
            Ok(md) => {
                let key = (
                    md.dev(),
                    md.ino(),
                    md.mtime(),
                    md.mtime_nsec(),
                    md.ctime(),
                    md.ctime_nsec(),
                    md.size(),
                );
                if self.file_key == Some(key) {
                    return;
                }
                self.file_key = Some(key);
                self.used = 0;
                self.spec = match fs::read_to_string(path) {
                    Ok(text) => FaultSpec::parse(&text).unwrap_or_else(|e| {
                        eprintln!(
                            "hkms-fault-pkcs11: {}: {e}; file ignored (no fault)",
                            path.display()
                        );
                        FaultSpec::off()
                    }),
                    Err(_) => FaultSpec::off(),
                };
                log!("token {label:?}: fault now {:?}", self.spec);
            }
            Err(_) => {
                if self.file_key.is_some() {
                    self.file_key = None;
                    self.used = 0;
                    self.spec = FaultSpec::off();
                    log!("token {label:?}: control file removed, no fault");
                }
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// Last virtual session handle handed out.
    last_handle: CK_SESSION_HANDLE,
    /// Open sessions by virtual handle.
    sessions: HashMap<CK_SESSION_HANDLE, Session>,
    /// Labels of initialised tokens by slot (cache; refreshed on a miss,
    /// cleared by `C_GetSlotList`, `C_InitToken` and `C_Finalize`).
    slot_labels: HashMap<CK_SLOT_ID, String>,
    /// Per-token fault state, by label. Survives `C_Finalize`.
    tokens: HashMap<String, Token>,
}

fn state() -> MutexGuard<'static, State> {
    static STATE: LazyLock<Mutex<State>> = LazyLock::new(Mutex::default);
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What to do with one call, decided under the state lock.
enum Step {
    Forward(Duration),
    Fail(Injected, Duration),
    Wait,
}

/// A fault to return instead of forwarding.
#[derive(Clone, Copy)]
struct Injected {
    rv: CK_RV,
    /// `mode = error`: the real module's active operation must be ended as
    /// a real device would (see [`end_operation`]).
    ends_operation: bool,
}

impl State {
    fn step(
        &mut self,
        real: &CK_FUNCTION_LIST,
        function: &'static str,
        label: &str,
        mechanism: Option<CK_MECHANISM_TYPE>,
        first_poll: bool,
    ) -> Step {
        let State {
            sessions, tokens, ..
        } = self;
        let path = config().dir.as_deref().map(|d| fault_file(d, label));
        let token = tokens.entry(label.to_owned()).or_default();
        token.refresh(path.as_deref(), label);
        let spec = &token.spec;
        let applies = spec.applies_to(function);
        let latency = Duration::from_millis(if applies { spec.latency_ms } else { 0 });

        if spec.mode == Mode::Dead {
            if !token.dead {
                log!("token {label:?}: dead");
            }
            token.dead = true;
            token.injected += 1;
            let fault = Injected {
                rv: CKR_DEVICE_ERROR,
                ends_operation: false,
            };
            return Step::Fail(fault, latency);
        }
        if token.dead {
            token.dead = false;
            reset_token(real, sessions, label);
        }
        match spec.mode {
            Mode::Hang if applies => {
                if first_poll {
                    token.injected += 1;
                    log!("token {label:?}: {function} hangs");
                }
                Step::Wait
            }
            Mode::Error if applies && spec.count.is_none_or(|n| token.used < n) => {
                token.used += 1;
                token.injected += 1;
                log!("token {label:?}: {function} -> {}", rv_name(spec.rv));
                let fault = Injected {
                    rv: spec.rv,
                    // PKCS#11: every error except CKR_BUFFER_TOO_SMALL ends
                    // the active operation.
                    ends_operation: spec.rv != CKR_BUFFER_TOO_SMALL,
                };
                Step::Fail(fault, latency)
            }
            // A device without the mechanism: in every mode, after the fault above.
            _ if mechanism.is_some_and(|m| spec.hides(m)) => {
                token.injected += 1;
                log!(
                    "token {label:?}: {function} with hidden {} -> CKR_MECHANISM_INVALID",
                    mechanism.map(mechanism_name).unwrap_or_default()
                );
                let fault = Injected {
                    rv: CKR_MECHANISM_INVALID,
                    ends_operation: false,
                };
                Step::Fail(fault, latency)
            }
            _ => {
                token.forwarded += 1;
                Step::Forward(latency)
            }
        }
    }

    /// Registers a new real session and returns its virtual handle.
    fn add_session(
        &mut self,
        real: CK_SESSION_HANDLE,
        slot: CK_SLOT_ID,
        label: Option<String>,
    ) -> CK_SESSION_HANDLE {
        self.last_handle += 1;
        let handle = self.last_handle;
        self.sessions.insert(handle, Session { real, slot, label });
        handle
    }
}

/// Simulated device reset after a `dead` period: every session open on the
/// token is dropped from our table (its handle is now invalid for good) and
/// closed in the real module, after a `C_Logout` on one of them so that the
/// login state is gone as well (SoftHSM also logs a token out when its last
/// session closes). Called with the state lock held.
fn reset_token(
    real: &CK_FUNCTION_LIST,
    sessions: &mut HashMap<CK_SESSION_HANDLE, Session>,
    label: &str,
) {
    let stale: Vec<CK_SESSION_HANDLE> = sessions
        .iter()
        .filter(|(_, s)| s.label.as_deref() == Some(label))
        .map(|(&h, _)| h)
        .collect();
    let real_handles: Vec<CK_SESSION_HANDLE> = stale
        .iter()
        .filter_map(|h| sessions.remove(h))
        .map(|s| s.real)
        .collect();
    if let (Some(&first), Some(logout)) = (real_handles.first(), real.C_Logout) {
        // SAFETY: a session handle the real module gave us and that is still
        // open. The result (e.g. CKR_USER_NOT_LOGGED_IN) does not matter.
        unsafe { logout(first) };
    }
    if let Some(close) = real.C_CloseSession {
        for &h in &real_handles {
            // SAFETY: as above; each handle is closed once and forgotten.
            unsafe { close(h) };
        }
    }
    log!(
        "token {label:?}: recovered from dead; {} session(s) invalidated, logged out",
        real_handles.len()
    );
}

/// Applies the fault of the token labelled `label` to a call of `function`
/// given `mechanism` (if any): `Ok(())` means "forward now", `Err` means
/// "return this instead". Blocks while the token hangs; sleeps for the
/// latency. Never holds the lock while sleeping.
fn check(
    real: &CK_FUNCTION_LIST,
    function: &'static str,
    label: &str,
    mechanism: Option<CK_MECHANISM_TYPE>,
) -> Result<(), Injected> {
    let mut first_poll = true;
    loop {
        let step = state().step(real, function, label, mechanism, first_poll);
        first_poll = false;
        match step {
            Step::Wait => thread::sleep(HANG_POLL),
            Step::Forward(latency) => {
                thread::sleep(latency);
                return Ok(());
            }
            Step::Fail(fault, latency) => {
                thread::sleep(latency);
                return Err(fault);
            }
        }
    }
}

/// Label of the initialised token in `slot`, from the cache or the real
/// module's `C_GetTokenInfo`. `None` for an empty slot or uninitialised token.
fn slot_label(real: &CK_FUNCTION_LIST, slot: CK_SLOT_ID) -> Option<String> {
    if let Some(label) = state().slot_labels.get(&slot) {
        return Some(label.clone());
    }
    let get_token_info = real.C_GetTokenInfo?;
    // SAFETY: CK_TOKEN_INFO is plain data; all-zero is a valid value.
    let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    let rv = unsafe { get_token_info(slot, &mut info) };
    if rv != CKR_OK {
        return None;
    }
    let label = token_label(&info)?;
    state().slot_labels.insert(slot, label.clone());
    Some(label)
}

/// The trimmed label of an initialised token.
fn token_label(info: &CK_TOKEN_INFO) -> Option<String> {
    if info.flags & CKF_TOKEN_INITIALIZED == 0 {
        return None;
    }
    let label = String::from_utf8_lossy(&info.label);
    let label = label.trim_end_matches([' ', '\0']);
    (!label.is_empty()).then(|| label.to_owned())
}

/// Fault check for a slot-taking function. Returns the token's label.
fn enter_slot(
    real: &CK_FUNCTION_LIST,
    function: &'static str,
    slot: CK_SLOT_ID,
) -> Result<Option<String>, CK_RV> {
    enter_slot_using(real, function, slot, None)
}

/// [`enter_slot`] for a function given a mechanism (`hide_mechanisms`).
fn enter_slot_using(
    real: &CK_FUNCTION_LIST,
    function: &'static str,
    slot: CK_SLOT_ID,
    mechanism: Option<CK_MECHANISM_TYPE>,
) -> Result<Option<String>, CK_RV> {
    let label = slot_label(real, slot);
    if let Some(label) = &label {
        check(real, function, label, mechanism).map_err(|f| f.rv)?;
    }
    Ok(label)
}

/// Fault check for a session-taking function. Returns the real handle.
fn enter_session(
    real: &CK_FUNCTION_LIST,
    function: &'static str,
    handle: CK_SESSION_HANDLE,
) -> Result<CK_SESSION_HANDLE, CK_RV> {
    enter_session_using(real, function, handle, None)
}

/// [`enter_session`] for a function given a mechanism (`hide_mechanisms`).
fn enter_session_using(
    real: &CK_FUNCTION_LIST,
    function: &'static str,
    handle: CK_SESSION_HANDLE,
    mechanism: Option<CK_MECHANISM_TYPE>,
) -> Result<CK_SESSION_HANDLE, CK_RV> {
    let label = match state().sessions.get(&handle) {
        Some(s) => s.label.clone(),
        None => return Err(CKR_SESSION_HANDLE_INVALID),
    };
    let checked = match &label {
        Some(label) => check(real, function, label, mechanism),
        None => Ok(()),
    };
    // Look again: the check may have reset the token and closed this session.
    let real_handle = match state().sessions.get(&handle) {
        Some(s) => s.real,
        None => return Err(CKR_SESSION_HANDLE_INVALID),
    };
    match checked {
        Ok(()) => Ok(real_handle),
        Err(fault) => {
            if fault.ends_operation {
                if let Some(kind) = OpKind::of(function) {
                    end_operation(real, real_handle, kind);
                }
            }
            Err(fault.rv)
        }
    }
}

/// Operations that, per PKCS#11, an error return from one of their
/// functions terminates.
#[derive(Clone, Copy, Debug)]
enum OpKind {
    Encrypt,
    Decrypt,
    Digest,
    Sign,
    Verify,
}

impl OpKind {
    fn of(function: &str) -> Option<OpKind> {
        Some(match function {
            "C_Encrypt" | "C_EncryptUpdate" | "C_EncryptFinal" => OpKind::Encrypt,
            "C_Decrypt" | "C_DecryptUpdate" | "C_DecryptFinal" => OpKind::Decrypt,
            "C_Digest" | "C_DigestUpdate" | "C_DigestKey" | "C_DigestFinal" => OpKind::Digest,
            "C_Sign" | "C_SignUpdate" | "C_SignFinal" => OpKind::Sign,
            "C_Verify" | "C_VerifyUpdate" | "C_VerifyFinal" => OpKind::Verify,
            _ => return None,
        })
    }
}

/// Calls an output-producing function with a scratch buffer (retrying once
/// with the size it asks for).
fn with_scratch(mut call: impl FnMut(*mut CK_BYTE, *mut CK_ULONG) -> CK_RV) -> CK_RV {
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = buf.len() as CK_ULONG;
    let rv = call(buf.as_mut_ptr(), &mut len);
    if rv != CKR_BUFFER_TOO_SMALL {
        return rv;
    }
    buf.resize(len as usize, 0);
    call(buf.as_mut_ptr(), &mut len)
}

/// After an injected error on a function of an active operation, ends that
/// operation in the real module, as a real device that returned the error
/// would have; otherwise the next `C_*Init` on the session would fail with
/// `CKR_OPERATION_ACTIVE`. Best effort, results ignored: first finish the
/// operation as multi-part (`C_*Final` into a scratch buffer); if that fails
/// (e.g. SoftHSM refuses `C_*Final` for single-part-only mechanisms without
/// ending the operation), finish it as single-part on dummy data. If no
/// operation is active, both calls just return
/// `CKR_OPERATION_NOT_INITIALIZED`.
fn end_operation(real: &CK_FUNCTION_LIST, h: CK_SESSION_HANDLE, kind: OpKind) {
    type Finish = unsafe extern "C" fn(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG) -> CK_RV;
    type OneShot = unsafe extern "C" fn(
        CK_SESSION_HANDLE,
        *mut CK_BYTE,
        CK_ULONG,
        *mut CK_BYTE,
        *mut CK_ULONG,
    ) -> CK_RV;
    let mut dummy = [0u8; 32];
    let d = dummy.as_mut_ptr();
    let n = dummy.len() as CK_ULONG;
    // SAFETY (the calls below): `h` is an open session of the real module;
    // `d` points to a live local buffer of `n` bytes; `with_scratch` passes
    // a live output buffer and its length.
    let finish = |f: Option<Finish>| {
        f.map_or(CKR_FUNCTION_NOT_SUPPORTED, |f| {
            with_scratch(|o, l| unsafe { f(h, o, l) })
        })
    };
    let one_shot = |f: Option<OneShot>| {
        f.map_or(CKR_FUNCTION_NOT_SUPPORTED, |f| {
            with_scratch(|o, l| unsafe { f(h, d, n, o, l) })
        })
    };
    let (multi, single) = match kind {
        OpKind::Encrypt => (real.C_EncryptFinal, real.C_Encrypt),
        OpKind::Decrypt => (real.C_DecryptFinal, real.C_Decrypt),
        OpKind::Digest => (real.C_DigestFinal, real.C_Digest),
        OpKind::Sign => (real.C_SignFinal, real.C_Sign),
        OpKind::Verify => {
            let multi = real
                .C_VerifyFinal
                .map_or(CKR_FUNCTION_NOT_SUPPORTED, |f| unsafe { f(h, d, n) });
            if multi != CKR_OK {
                let single = real
                    .C_Verify
                    .map_or(CKR_FUNCTION_NOT_SUPPORTED, |f| unsafe { f(h, d, n, d, n) });
                log!(
                    "ended Verify operation after injected error ({}, {})",
                    rv_name(multi),
                    rv_name(single)
                );
            }
            return;
        }
    };
    let multi = finish(multi);
    if multi != CKR_OK {
        let single = one_shot(single);
        log!(
            "ended {kind:?} operation after injected error ({}, {})",
            rv_name(multi),
            rv_name(single)
        );
    }
}

/// Runs a wrapper body: `Err(rv)` and panics become return values (a panic
/// must not unwind into C).
fn ffi(body: impl FnOnce() -> Result<CK_RV, CK_RV>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(rv)) | Ok(Err(rv)) => rv,
        Err(_) => CKR_GENERAL_ERROR,
    }
}

// ---------------------------------------------------------------------------
// The function list
// ---------------------------------------------------------------------------

/// Our function list, handed out by [`C_GetFunctionList`].
static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};

/// The module's entry point: returns the forwarding function list. Loads the
/// real module on first use (`CKR_GENERAL_ERROR` if that fails; the reason
/// goes to stderr).
///
/// # Safety
/// `list` must be null or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    ffi(|| {
        if list.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        real()?;
        // SAFETY: checked non-null; the caller provides a writable pointer.
        // The list is never written through the returned pointer (PKCS#11
        // callers treat it as read-only).
        unsafe { *list = ptr::addr_of!(FUNCTION_LIST).cast_mut() };
        Ok(CKR_OK)
    })
}

/// Counters of the token labelled `label` in this process: calls forwarded
/// to the real module and calls answered with an injected fault (a hung call
/// counts once). Unknown labels give zeros. Not part of PKCS#11; for tests,
/// through `dlsym` (see [`read_counters`]).
///
/// # Safety
/// `label` must be a NUL-terminated string; the out-pointers must be null or
/// valid for writing.
#[no_mangle]
pub unsafe extern "C" fn hkms_fault_counters(
    label: *const c_char,
    forwarded: *mut u64,
    injected: *mut u64,
) -> CK_RV {
    ffi(|| {
        if label.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: non-null, NUL-terminated per the contract.
        let label = unsafe { CStr::from_ptr(label) }.to_string_lossy();
        let (f, i) = state()
            .tokens
            .get(label.as_ref())
            .map_or((0, 0), |t| (t.forwarded, t.injected));
        // SAFETY: each pointer is checked for null and otherwise writable per
        // the contract.
        unsafe {
            if !forwarded.is_null() {
                *forwarded = f;
            }
            if !injected.is_null() {
                *injected = i;
            }
        }
        Ok(CKR_OK)
    })
}

/// Per-token counters, as returned by [`read_counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Calls forwarded to the real module.
    pub forwarded: u64,
    /// Calls answered with an injected fault.
    pub injected: u64,
}

/// Reads the counters of `label` from the instance of the module at
/// `module_path` loaded in this process (dlopen of an already loaded path
/// returns that same instance). Only meaningful in the process that uses the
/// module.
pub fn read_counters(module_path: &Path, label: &str) -> Result<Counters, String> {
    type CountersFn = unsafe extern "C" fn(*const c_char, *mut u64, *mut u64) -> CK_RV;
    let c_label = std::ffi::CString::new(label).map_err(|e| e.to_string())?;
    // SAFETY: loading our own module (normally already loaded, then this only
    // bumps its reference count).
    let lib = unsafe { libloading::Library::new(module_path) }.map_err(|e| e.to_string())?;
    // SAFETY: the symbol is defined above with exactly this signature.
    let get =
        unsafe { lib.get::<CountersFn>(b"hkms_fault_counters\0") }.map_err(|e| e.to_string())?;
    let mut c = Counters::default();
    // SAFETY: valid NUL-terminated string and out-pointers.
    let rv = unsafe { get(c_label.as_ptr(), &mut c.forwarded, &mut c.injected) };
    if rv != CKR_OK {
        return Err(rv_name(rv));
    }
    Ok(c)
}

// ---------------------------------------------------------------------------
// Functions that concern no token: forwarded, never faulted
// ---------------------------------------------------------------------------

unsafe extern "C" fn C_Initialize(init_args: *mut c_void) -> CK_RV {
    ffi(|| {
        let f = real()?.C_Initialize.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        // SAFETY: arguments passed through unchanged.
        Ok(unsafe { f(init_args) })
    })
}

unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    ffi(|| {
        let f = real()?.C_Finalize.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        // SAFETY: arguments passed through unchanged.
        let rv = unsafe { f(reserved) };
        if rv == CKR_OK {
            // The real module closed every session; forget ours.
            let mut st = state();
            st.sessions.clear();
            st.slot_labels.clear();
        }
        Ok(rv)
    })
}

unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    ffi(|| {
        let f = real()?.C_GetInfo.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        // SAFETY: arguments passed through unchanged.
        Ok(unsafe { f(info) })
    })
}

unsafe extern "C" fn C_GetSlotList(
    token_present: CK_BBOOL,
    slot_list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    ffi(|| {
        let f = real()?.C_GetSlotList.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        // SAFETY: arguments passed through unchanged.
        let rv = unsafe { f(token_present, slot_list, count) };
        if rv == CKR_OK && !slot_list.is_null() {
            // Slots may have changed (tokens initialised elsewhere).
            state().slot_labels.clear();
        }
        Ok(rv)
    })
}

unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    slot: *mut CK_SLOT_ID,
    reserved: *mut c_void,
) -> CK_RV {
    ffi(|| {
        let f = real()?
            .C_WaitForSlotEvent
            .ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        // SAFETY: arguments passed through unchanged.
        Ok(unsafe { f(flags, slot, reserved) })
    })
}

// ---------------------------------------------------------------------------
// Slot-taking functions
// ---------------------------------------------------------------------------

/// Wrappers for slot-taking functions with nothing special to do.
macro_rules! slot_fns {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ); )*) => { $(
        unsafe extern "C" fn $name(slot: CK_SLOT_ID $(, $arg: $ty)*) -> CK_RV {
            ffi(|| {
                let real = real()?;
                let f = real.$name.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
                enter_slot(real, stringify!($name), slot)?;
                // SAFETY: arguments passed through unchanged.
                Ok(unsafe { f(slot $(, $arg)*) })
            })
        }
    )* };
}

slot_fns! {
    C_GetSlotInfo(info: *mut CK_SLOT_INFO);
}

/// The mechanisms of the token the caller sees: the real module's list without
/// the token's `hide_mechanisms`.
unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    ffi(|| {
        let real = real()?;
        let f = real.C_GetMechanismList.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        let label = enter_slot(real, "C_GetMechanismList", slot)?;
        let hidden = label.as_deref().map(hidden_mechanisms).unwrap_or_default();
        if hidden.is_empty() {
            // SAFETY: arguments passed through unchanged.
            return Ok(unsafe { f(slot, list, count) });
        }
        if count.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let mut shown = real_mechanism_list(f, slot)?;
        shown.retain(|m| !hidden.contains(m));
        let needed = shown.len() as CK_ULONG;
        // SAFETY: checked non-null; readable and writable per the PKCS#11
        // contract (with a list, it holds the list's capacity in elements).
        let capacity = unsafe { *count };
        // SAFETY: as above. PKCS#11: `*count` receives the number of
        // mechanisms whether the list is null, too small or large enough.
        unsafe { *count = needed };
        if list.is_null() {
            return Ok(CKR_OK);
        }
        if capacity < needed {
            return Ok(CKR_BUFFER_TOO_SMALL);
        }
        // SAFETY: `list` is non-null and, per the contract, valid for writing
        // `capacity` >= `shown.len()` elements; `shown` is our own vector, so
        // the two do not overlap.
        unsafe { ptr::copy_nonoverlapping(shown.as_ptr(), list, shown.len()) };
        Ok(CKR_OK)
    })
}

/// The real module's full mechanism list for `slot` (`Err`: its error).
fn real_mechanism_list(
    f: unsafe extern "C" fn(CK_SLOT_ID, *mut CK_MECHANISM_TYPE, *mut CK_ULONG) -> CK_RV,
    slot: CK_SLOT_ID,
) -> Result<Vec<CK_MECHANISM_TYPE>, CK_RV> {
    // The list cannot change under a token, but retry a few times if it does.
    for _ in 0..4 {
        let mut n: CK_ULONG = 0;
        // SAFETY: null list (count query) and a valid out-pointer.
        let rv = unsafe { f(slot, ptr::null_mut(), &mut n) };
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut buf: Vec<CK_MECHANISM_TYPE> = vec![0; n as usize];
        // SAFETY: `buf` holds `n` elements, the capacity passed in `n`.
        let rv = unsafe { f(slot, buf.as_mut_ptr(), &mut n) };
        match rv {
            CKR_OK => {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            CKR_BUFFER_TOO_SMALL => continue,
            _ => return Err(rv),
        }
    }
    Err(CKR_GENERAL_ERROR)
}

/// The token's `hide_mechanisms`, as last read from its control file.
fn hidden_mechanisms(label: &str) -> Vec<CK_MECHANISM_TYPE> {
    state()
        .tokens
        .get(label)
        .map(|t| t.spec.hide_mechanisms.clone())
        .unwrap_or_default()
}

/// `CKR_MECHANISM_INVALID` for a mechanism the token hides.
unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    mechanism: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    ffi(|| {
        let real = real()?;
        let f = real.C_GetMechanismInfo.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        enter_slot_using(real, "C_GetMechanismInfo", slot, Some(mechanism))?;
        // SAFETY: arguments passed through unchanged.
        Ok(unsafe { f(slot, mechanism, info) })
    })
}

unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    ffi(|| {
        let real = real()?;
        let f = real.C_GetTokenInfo.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        enter_slot(real, "C_GetTokenInfo", slot)?;
        // SAFETY: arguments passed through unchanged.
        let rv = unsafe { f(slot, info) };
        if rv == CKR_OK && !info.is_null() {
            // Free refresh of the label cache.
            // SAFETY: the real module just filled `*info`.
            let label = token_label(unsafe { &*info });
            let mut st = state();
            match label {
                Some(l) => st.slot_labels.insert(slot, l),
                None => st.slot_labels.remove(&slot),
            };
        }
        Ok(rv)
    })
}

unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    ffi(|| {
        let real = real()?;
        let f = real.C_InitToken.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        enter_slot(real, "C_InitToken", slot)?;
        // SAFETY: arguments passed through unchanged.
        let rv = unsafe { f(slot, pin, pin_len, label) };
        // The slot's label may have changed.
        state().slot_labels.remove(&slot);
        Ok(rv)
    })
}

unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    application: *mut c_void,
    notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    ffi(|| {
        let real = real()?;
        let f = real.C_OpenSession.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        if session.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let label = enter_slot(real, "C_OpenSession", slot)?;
        let mut real_handle: CK_SESSION_HANDLE = CK_INVALID_HANDLE;
        // SAFETY: arguments passed through unchanged except the out-pointer,
        // which is ours. `notify` (if any) receives the real handle; SoftHSM
        // never calls it.
        let rv = unsafe { f(slot, flags, application, notify, &mut real_handle) };
        if rv == CKR_OK {
            let handle = state().add_session(real_handle, slot, label);
            // SAFETY: checked non-null; writable per the PKCS#11 contract.
            unsafe { *session = handle };
        }
        Ok(rv)
    })
}

unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    ffi(|| {
        let real = real()?;
        let f = real.C_CloseAllSessions.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        enter_slot(real, "C_CloseAllSessions", slot)?;
        // SAFETY: arguments passed through unchanged.
        let rv = unsafe { f(slot) };
        if rv == CKR_OK {
            state().sessions.retain(|_, s| s.slot != slot);
        }
        Ok(rv)
    })
}

// ---------------------------------------------------------------------------
// Session-taking functions
// ---------------------------------------------------------------------------

unsafe extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    ffi(|| {
        let real = real()?;
        let f = real.C_CloseSession.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        let real_session = enter_session(real, "C_CloseSession", session)?;
        // SAFETY: the real handle of an open session.
        let rv = unsafe { f(real_session) };
        if matches!(rv, CKR_OK | CKR_SESSION_HANDLE_INVALID | CKR_SESSION_CLOSED) {
            state().sessions.remove(&session);
        }
        Ok(rv)
    })
}

/// Wrappers for session-taking functions: translate the handle, check the
/// fault, forward the other arguments unchanged.
macro_rules! session_fns {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ); )*) => { $(
        unsafe extern "C" fn $name(session: CK_SESSION_HANDLE $(, $arg: $ty)*) -> CK_RV {
            ffi(|| {
                let real = real()?;
                let f = real.$name.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
                let real_session = enter_session(real, stringify!($name), session)?;
                // SAFETY: the real handle of an open session; the other
                // arguments are passed through unchanged.
                Ok(unsafe { f(real_session $(, $arg)*) })
            })
        }
    )* };
}

session_fns! {
    C_InitPIN(pin: *mut CK_UTF8CHAR, pin_len: CK_ULONG);
    C_SetPIN(old: *mut CK_UTF8CHAR, old_len: CK_ULONG, new: *mut CK_UTF8CHAR, new_len: CK_ULONG);
    C_GetSessionInfo(info: *mut CK_SESSION_INFO);
    C_GetOperationState(op_state: *mut CK_BYTE, op_state_len: *mut CK_ULONG);
    C_SetOperationState(
        op_state: *mut CK_BYTE,
        op_state_len: CK_ULONG,
        encryption_key: CK_OBJECT_HANDLE,
        authentication_key: CK_OBJECT_HANDLE
    );
    C_Login(user_type: CK_USER_TYPE, pin: *mut CK_UTF8CHAR, pin_len: CK_ULONG);
    C_Logout();
    C_CreateObject(template: *mut CK_ATTRIBUTE, count: CK_ULONG, object: *mut CK_OBJECT_HANDLE);
    C_CopyObject(
        object: CK_OBJECT_HANDLE,
        template: *mut CK_ATTRIBUTE,
        count: CK_ULONG,
        new_object: *mut CK_OBJECT_HANDLE
    );
    C_DestroyObject(object: CK_OBJECT_HANDLE);
    C_GetObjectSize(object: CK_OBJECT_HANDLE, size: *mut CK_ULONG);
    C_GetAttributeValue(object: CK_OBJECT_HANDLE, template: *mut CK_ATTRIBUTE, count: CK_ULONG);
    C_SetAttributeValue(object: CK_OBJECT_HANDLE, template: *mut CK_ATTRIBUTE, count: CK_ULONG);
    C_FindObjectsInit(template: *mut CK_ATTRIBUTE, count: CK_ULONG);
    C_FindObjects(objects: *mut CK_OBJECT_HANDLE, max: CK_ULONG, count: *mut CK_ULONG);
    C_FindObjectsFinal();
    C_Encrypt(data: *mut CK_BYTE, data_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_EncryptUpdate(part: *mut CK_BYTE, part_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_EncryptFinal(out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_Decrypt(data: *mut CK_BYTE, data_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_DecryptUpdate(part: *mut CK_BYTE, part_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_DecryptFinal(out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_Digest(data: *mut CK_BYTE, data_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_DigestUpdate(part: *mut CK_BYTE, part_len: CK_ULONG);
    C_DigestKey(key: CK_OBJECT_HANDLE);
    C_DigestFinal(out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_Sign(data: *mut CK_BYTE, data_len: CK_ULONG, sig: *mut CK_BYTE, sig_len: *mut CK_ULONG);
    C_SignUpdate(part: *mut CK_BYTE, part_len: CK_ULONG);
    C_SignFinal(sig: *mut CK_BYTE, sig_len: *mut CK_ULONG);
    C_SignRecover(data: *mut CK_BYTE, data_len: CK_ULONG, sig: *mut CK_BYTE, sig_len: *mut CK_ULONG);
    C_Verify(data: *mut CK_BYTE, data_len: CK_ULONG, sig: *mut CK_BYTE, sig_len: CK_ULONG);
    C_VerifyUpdate(part: *mut CK_BYTE, part_len: CK_ULONG);
    C_VerifyFinal(sig: *mut CK_BYTE, sig_len: CK_ULONG);
    C_VerifyRecover(sig: *mut CK_BYTE, sig_len: CK_ULONG, data: *mut CK_BYTE, data_len: *mut CK_ULONG);
    C_DigestEncryptUpdate(part: *mut CK_BYTE, part_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_DecryptDigestUpdate(part: *mut CK_BYTE, part_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_SignEncryptUpdate(part: *mut CK_BYTE, part_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_DecryptVerifyUpdate(part: *mut CK_BYTE, part_len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_SeedRandom(seed: *mut CK_BYTE, seed_len: CK_ULONG);
    C_GenerateRandom(out: *mut CK_BYTE, out_len: CK_ULONG);
    C_GetFunctionStatus();
    C_CancelFunction();
}

/// Wrappers for session-taking functions whose first other argument is a
/// mechanism: like `session_fns`, and a mechanism the token hides gives
/// `CKR_MECHANISM_INVALID` without forwarding.
macro_rules! session_mechanism_fns {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ); )*) => { $(
        unsafe extern "C" fn $name(
            session: CK_SESSION_HANDLE,
            mechanism: *mut CK_MECHANISM
            $(, $arg: $ty)*
        ) -> CK_RV {
            ffi(|| {
                let real = real()?;
                let f = real.$name.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
                // SAFETY: `mechanism` is null or, per the PKCS#11 contract,
                // points to a valid CK_MECHANISM for the duration of the call.
                let mechanism_type = unsafe { mechanism.as_ref() }.map(|m| m.mechanism);
                let real_session =
                    enter_session_using(real, stringify!($name), session, mechanism_type)?;
                // SAFETY: the real handle of an open session; the other
                // arguments are passed through unchanged.
                Ok(unsafe { f(real_session, mechanism $(, $arg)*) })
            })
        }
    )* };
}

session_mechanism_fns! {
    C_EncryptInit(key: CK_OBJECT_HANDLE);
    C_DecryptInit(key: CK_OBJECT_HANDLE);
    C_DigestInit();
    C_SignInit(key: CK_OBJECT_HANDLE);
    C_SignRecoverInit(key: CK_OBJECT_HANDLE);
    C_VerifyInit(key: CK_OBJECT_HANDLE);
    C_VerifyRecoverInit(key: CK_OBJECT_HANDLE);
    C_GenerateKey(
        template: *mut CK_ATTRIBUTE,
        count: CK_ULONG,
        key: *mut CK_OBJECT_HANDLE
    );
    C_GenerateKeyPair(
        public_template: *mut CK_ATTRIBUTE,
        public_count: CK_ULONG,
        private_template: *mut CK_ATTRIBUTE,
        private_count: CK_ULONG,
        public_key: *mut CK_OBJECT_HANDLE,
        private_key: *mut CK_OBJECT_HANDLE
    );
    C_WrapKey(
        wrapping_key: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
        wrapped: *mut CK_BYTE,
        wrapped_len: *mut CK_ULONG
    );
    C_UnwrapKey(
        unwrapping_key: CK_OBJECT_HANDLE,
        wrapped: *mut CK_BYTE,
        wrapped_len: CK_ULONG,
        template: *mut CK_ATTRIBUTE,
        count: CK_ULONG,
        key: *mut CK_OBJECT_HANDLE
    );
    C_DeriveKey(
        base_key: CK_OBJECT_HANDLE,
        template: *mut CK_ATTRIBUTE,
        count: CK_ULONG,
        key: *mut CK_OBJECT_HANDLE
    );
}
