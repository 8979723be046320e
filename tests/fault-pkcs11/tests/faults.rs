//! End-to-end tests of the fault module: SoftHSM2 with two tokens, `A` and
//! `B`, used through `libhkms_fault_pkcs11.so` with the `cryptoki` crate.
//!
//! A process initialises PKCS#11 once, so all tests share one context (set
//! up on first use) and run one at a time (`serial()`); each test removes its
//! control files when it ends, even on failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::{
    CKM_ECDSA, CKM_RSA_PKCS_PSS, CKR_BUFFER_TOO_SMALL, CKR_DEVICE_ERROR, CKR_GENERAL_ERROR, CKR_OK,
    CK_FUNCTION_LIST, CK_MECHANISM_TYPE, CK_RV, CK_ULONG,
};
use hkms_fault_pkcs11::control::{self, FaultSpec};
use hkms_fault_pkcs11::{read_counters, Counters};

const SO_PIN: &str = "1234";
const USER_PIN: &str = "5678";
const IV: [u8; 16] = [7; 16];
const PLAINTEXT: &[u8] = b"fault injection test";

struct Harness {
    ctx: Pkcs11,
    module: PathBuf,
    faults: PathBuf,
    a: Slot,
    b: Slot,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(setup)
}

/// Serialises the tests (they share tokens and control files).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch directory per test process under cargo's target tmp dir;
/// directories of test processes that are gone are removed.
fn scratch_dir() -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let prefix = "hkms-fault-pkcs11-";
    if let Ok(entries) = fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn setup() -> Harness {
    let root = scratch_dir();
    let tokens = root.join("tokens");
    let faults = root.join("faults");
    fs::create_dir_all(&tokens).unwrap();
    fs::create_dir_all(&faults).unwrap();
    let conf = root.join("softhsm2.conf");
    fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    for label in ["A", "B"] {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
            .output()
            .expect("run softhsm2-util");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token {label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Read by SoftHSM and by the fault module when they are loaded below.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    std::env::set_var(control::ENV_FAULT_DIR, &faults);

    let module = control::locate_module()
        .expect("libhkms_fault_pkcs11.so not found next to the test executable");
    let ctx = Pkcs11::new(&module).expect("load the fault module");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let find = |label: &str| {
        ctx.get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|&s| ctx.get_token_info(s).unwrap().label() == label)
            .unwrap_or_else(|| panic!("token {label} not found"))
    };
    let (a, b) = (find("A"), find("B"));
    Harness {
        ctx,
        module,
        faults,
        a,
        b,
    }
}

/// Sets up the harness, serialises, and clears the control files of the
/// tokens when dropped.
struct Test {
    h: &'static Harness,
    _serial: MutexGuard<'static, ()>,
}

impl Test {
    fn start() -> Test {
        let serial = serial();
        let h = harness();
        for label in ["A", "B", "C"] {
            control::clear_fault(&h.faults, label).unwrap();
        }
        Test { h, _serial: serial }
    }

    fn fault(&self, label: &str, spec: FaultSpec) {
        control::write_fault(&self.h.faults, label, &spec).unwrap();
    }

    fn fault_text(&self, label: &str, text: &str) {
        control::write_fault_text(&self.h.faults, label, text).unwrap();
    }

    fn clear(&self, label: &str) {
        control::clear_fault(&self.h.faults, label).unwrap();
    }

    fn counters(&self, label: &str) -> Counters {
        read_counters(&self.h.module, label).unwrap()
    }

    /// A logged-in R/W session.
    fn session(&self, slot: Slot) -> Session {
        let s = self.h.ctx.open_rw_session(slot).unwrap();
        login(&s).unwrap();
        s
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        for label in ["A", "B", "C"] {
            let _ = control::clear_fault(&self.h.faults, label);
        }
    }
}

fn login(s: &Session) -> cryptoki::error::Result<()> {
    match s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
        Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        other => other,
    }
}

/// A private AES-256 session key (generating it needs a login).
fn aes_key(s: &Session) -> cryptoki::error::Result<ObjectHandle> {
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::ValueLen(32.into()),
        ],
    )
}

fn encrypt(s: &Session, key: ObjectHandle) -> cryptoki::error::Result<Vec<u8>> {
    s.encrypt(&Mechanism::AesCbcPad(IV), key, PLAINTEXT)
}

fn roundtrip(s: &Session, key: ObjectHandle) {
    let ct = encrypt(s, key).unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::AesCbcPad(IV), key, &ct).unwrap(),
        PLAINTEXT
    );
}

/// The PKCS#11 error of a failed call.
fn rv_err<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> (RvError, Function) {
    match r {
        Err(Error::Pkcs11(rv, f)) => (rv, f),
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

#[test]
fn no_fault_forwards_to_both_tokens() {
    let t = Test::start();
    let before = t.counters("A");
    for slot in [t.h.a, t.h.b] {
        let s = t.session(slot);
        let key = aes_key(&s).unwrap();
        roundtrip(&s, key);
    }
    let after = t.counters("A");
    assert!(after.forwarded > before.forwarded);
    assert_eq!(after.injected, before.injected);
}

#[test]
fn error_on_one_token_leaves_the_other_working() {
    let t = Test::start();
    let sa = t.session(t.h.a);
    let sb = t.session(t.h.b);
    let ka = aes_key(&sa).unwrap();
    let kb = aes_key(&sb).unwrap();
    let (a0, b0) = (t.counters("A"), t.counters("B"));

    t.fault("A", FaultSpec::error(CKR_DEVICE_ERROR));
    let (rv, f) = rv_err(encrypt(&sa, ka));
    assert_eq!(rv, RvError::DeviceError);
    assert!(matches!(f, Function::EncryptInit), "{f:?}");
    assert_eq!(
        rv_err(t.h.ctx.open_rw_session(t.h.a)).0,
        RvError::DeviceError
    );
    assert_eq!(
        rv_err(t.h.ctx.get_token_info(t.h.a)).0,
        RvError::DeviceError
    );
    // Functions that concern no token are never faulted.
    assert!(t.h.ctx.get_slots_with_token().unwrap().contains(&t.h.a));
    t.h.ctx.get_library_info().unwrap();
    // B is unaffected, including new sessions.
    roundtrip(&sb, kb);
    let sb2 = t.session(t.h.b);
    aes_key(&sb2).unwrap();
    assert_eq!(t.counters("B").injected, b0.injected);
    assert!(t.counters("A").injected >= a0.injected + 3);

    // Any CKR_* value, written by hand with comments.
    t.fault_text(
        "A",
        "# by hand\nmode = error   # inject\nrv = CKR_GENERAL_ERROR\n",
    );
    assert_eq!(rv_err(encrypt(&sa, ka)).0, RvError::GeneralError);
    t.fault_text("A", "mode = error\nrv = 0x30\n");
    assert_eq!(rv_err(encrypt(&sa, ka)).0, RvError::DeviceError);

    // `error` does not reset anything: the old session works again.
    t.clear("A");
    roundtrip(&sa, ka);
}

#[test]
fn functions_filter_limits_the_fault() {
    let t = Test::start();
    let s = t.session(t.h.a);
    let key = aes_key(&s).unwrap();
    let ct = encrypt(&s, key).unwrap();

    t.fault(
        "A",
        FaultSpec::error(CKR_GENERAL_ERROR).functions(&["C_Encrypt"]),
    );
    // C_EncryptInit is forwarded, C_Encrypt fails.
    let (rv, f) = rv_err(encrypt(&s, key));
    assert_eq!(rv, RvError::GeneralError);
    assert!(matches!(f, Function::Encrypt), "{f:?}");
    // Other functions on the same token work.
    assert_eq!(
        s.decrypt(&Mechanism::AesCbcPad(IV), key, &ct).unwrap(),
        PLAINTEXT
    );
    s.generate_random_vec(16).unwrap();

    // The failed C_Encrypt ended the encryption in the real module too, as a
    // device returning an error would: the session can encrypt again.
    t.clear("A");
    roundtrip(&s, key);
}

#[test]
fn injected_error_ends_single_part_only_operations() {
    let t = Test::start();
    let s = t.session(t.h.a);
    // ECDSA (no hashing) is single-part only in SoftHSM: C_SignFinal does
    // not end it, so the module must finish it with C_Sign.
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (_pubkey, privkey) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(p256.to_vec()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let digest = [1u8; 32];
    t.fault(
        "A",
        FaultSpec::error(CKR_DEVICE_ERROR).functions(&["C_Sign"]),
    );
    let (rv, f) = rv_err(s.sign(&Mechanism::Ecdsa, privkey, &digest));
    assert_eq!(rv, RvError::DeviceError);
    assert!(matches!(f, Function::Sign), "{f:?}");
    t.clear("A");
    assert_eq!(
        s.sign(&Mechanism::Ecdsa, privkey, &digest).unwrap().len(),
        64
    );
}

#[test]
fn count_limits_the_number_of_faults() {
    let t = Test::start();
    let s = t.session(t.h.a);
    let spec = FaultSpec::error(CKR_DEVICE_ERROR)
        .functions(&["C_GenerateRandom"])
        .count(2);
    t.fault("A", spec.clone());
    for _ in 0..2 {
        assert_eq!(rv_err(s.generate_random_vec(8)).0, RvError::DeviceError);
    }
    for _ in 0..3 {
        s.generate_random_vec(8).unwrap();
    }
    // Rewriting the file (even with the same content) starts a new count.
    t.fault("A", spec.count(1));
    assert_eq!(rv_err(s.generate_random_vec(8)).0, RvError::DeviceError);
    s.generate_random_vec(8).unwrap();
}

#[test]
fn latency_delays_matching_calls() {
    let t = Test::start();
    let sa = t.session(t.h.a);
    let sb = t.session(t.h.b);
    let time = |s: &Session| {
        let start = Instant::now();
        for _ in 0..5 {
            s.generate_random_vec(8).unwrap();
        }
        start.elapsed()
    };
    t.fault(
        "A",
        FaultSpec::off()
            .latency_ms(60)
            .functions(&["C_GenerateRandom"]),
    );
    let slow = time(&sa);
    let fast = time(&sb);
    assert!(slow >= Duration::from_millis(300), "{slow:?}");
    assert!(fast < Duration::from_millis(250), "{fast:?}");
    // Not a matching function: no delay.
    let start = Instant::now();
    for _ in 0..5 {
        sa.get_session_info().unwrap();
    }
    assert!(start.elapsed() < Duration::from_millis(250));
    // Latency also applies in error mode.
    t.fault("A", FaultSpec::error(CKR_DEVICE_ERROR).latency_ms(100));
    let start = Instant::now();
    assert_eq!(rv_err(sa.generate_random_vec(8)).0, RvError::DeviceError);
    assert!(start.elapsed() >= Duration::from_millis(100));
    t.clear("A"); // so that the sessions close normally
}

#[test]
fn hang_blocks_until_released() {
    let t = Test::start();
    let sa = t.session(t.h.a);
    let sb = t.session(t.h.b);
    let injected = t.counters("A").injected;
    t.fault("A", FaultSpec::hang().functions(&["C_GenerateRandom"]));

    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let r = sa.generate_random_vec(8).map(|v| v.len());
        tx.send(r).unwrap();
        sa
    });
    // Blocked...
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(400)),
        Err(mpsc::RecvTimeoutError::Timeout)
    ));
    // ... while B, and A's other functions, keep working.
    sb.generate_random_vec(8).unwrap();
    t.h.ctx.get_token_info(t.h.a).unwrap();
    // Release.
    t.clear("A");
    let r = rx.recv_timeout(Duration::from_secs(5)).expect("released");
    assert_eq!(r.unwrap(), 8);
    let sa = worker.join().unwrap();
    sa.generate_random_vec(8).unwrap();
    assert_eq!(t.counters("A").injected, injected + 1);

    // Hang then error: the blocked call gets the new fault.
    t.fault("A", FaultSpec::hang().functions(&["C_GenerateRandom"]));
    let worker = thread::spawn(move || rv_err(sa.generate_random_vec(8)).0);
    thread::sleep(Duration::from_millis(100));
    t.fault(
        "A",
        FaultSpec::error(CKR_GENERAL_ERROR).functions(&["C_GenerateRandom"]),
    );
    assert_eq!(worker.join().unwrap(), RvError::GeneralError);
}

#[test]
fn dead_then_off_behaves_like_a_device_reset() {
    let t = Test::start();
    let old = t.session(t.h.a);
    let key = aes_key(&old).unwrap();
    roundtrip(&old, key);
    let sb = t.session(t.h.b);

    t.fault("A", FaultSpec::dead());
    assert_eq!(rv_err(encrypt(&old, key)).0, RvError::DeviceError);
    assert_eq!(
        rv_err(t.h.ctx.open_rw_session(t.h.a)).0,
        RvError::DeviceError
    );
    assert_eq!(
        rv_err(t.h.ctx.get_token_info(t.h.a)).0,
        RvError::DeviceError
    );
    assert_eq!(rv_err(t.h.ctx.get_slot_info(t.h.a)).0, RvError::DeviceError);
    // The `functions` filter does not narrow `dead`.
    t.fault("A", FaultSpec::dead().functions(&["C_Sign"]));
    assert_eq!(rv_err(old.generate_random_vec(8)).0, RvError::DeviceError);
    // B is fine.
    aes_key(&sb).unwrap();

    t.fault("A", FaultSpec::off());
    // Sessions from before the reset are gone for good...
    assert_eq!(
        rv_err(old.generate_random_vec(8)).0,
        RvError::SessionHandleInvalid
    );
    assert_eq!(
        rv_err(old.get_session_info()).0,
        RvError::SessionHandleInvalid
    );
    // ... new sessions work but start logged out ...
    let new = t.h.ctx.open_rw_session(t.h.a).unwrap();
    assert!(matches!(
        new.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    ));
    assert_eq!(rv_err(aes_key(&new)).0, RvError::UserNotLoggedIn);
    // ... until C_Login (which does not report "already logged in").
    new.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    let key = aes_key(&new).unwrap();
    roundtrip(&new, key);
    drop(old);
    // B kept its sessions and its login.
    assert!(matches!(
        sb.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    ));
    roundtrip(&sb, aes_key(&sb).unwrap());
}

#[test]
fn unparsable_control_file_is_ignored() {
    let t = Test::start();
    let s = t.session(t.h.a);
    t.fault_text("A", "mode = exploded\n");
    s.generate_random_vec(8).unwrap();
    t.fault_text("A", "mode = error\n");
    assert_eq!(rv_err(s.generate_random_vec(8)).0, RvError::DeviceError);
    t.clear("A");
}

#[test]
fn token_initialised_later_is_faultable() {
    let t = Test::start();
    let ctx = &t.h.ctx;
    // Initialise a third token, C, through the module, in SoftHSM's free slot.
    let free = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|&s| !ctx.get_token_info(s).unwrap().token_initialized())
        .expect("SoftHSM's free slot");
    t.fault("C", FaultSpec::error(CKR_DEVICE_ERROR));
    ctx.init_token(free, &AuthPin::new(SO_PIN.into()), "C")
        .unwrap();
    // SoftHSM may renumber the slot; find C again by label.
    let c = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|&s| {
            ctx.get_token_info(s)
                .is_err_and(|e| matches!(e, Error::Pkcs11(RvError::DeviceError, _)))
        })
        .expect("token C, faulted");
    assert_eq!(rv_err(ctx.open_ro_session(c)).0, RvError::DeviceError);
    ctx.open_ro_session(t.h.a).unwrap();
    control::clear_fault(&t.h.faults, "C").unwrap();
    assert_eq!(ctx.get_token_info(c).unwrap().label(), "C");
    ctx.open_ro_session(c).unwrap();
}

/// DER of the P-256 curve's OID (CKA_EC_PARAMS).
const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A P-256 session key pair; returns the private key.
fn ec_key(s: &Session) -> cryptoki::error::Result<ObjectHandle> {
    let (_, private) = s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[Attribute::Token(false), Attribute::EcParams(P256.to_vec())],
        &[
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sign(true),
        ],
    )?;
    Ok(private)
}

/// Raw `C_GetMechanismList` of the module loaded by the harness: (rv, count, list) for a
/// list of `capacity` elements (`None`: the count query, with a null list).
fn raw_mechanism_list(
    module: &Path,
    slot: Slot,
    capacity: Option<usize>,
) -> (CK_RV, CK_ULONG, Vec<CK_MECHANISM_TYPE>) {
    type GetFunctionList = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;
    // SAFETY: the harness has loaded and initialised this module already; this only
    // takes another reference to it.
    let lib = unsafe { libloading::Library::new(module) }.unwrap();
    // SAFETY: the PKCS#11 entry point has this signature.
    let get = unsafe { lib.get::<GetFunctionList>(b"C_GetFunctionList\0") }.unwrap();
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { get(&mut list) }, CKR_OK);
    // SAFETY: the module returned a pointer to its static function list.
    let f = unsafe { (*list).C_GetMechanismList }.unwrap();
    let mut buf: Vec<CK_MECHANISM_TYPE> = vec![0; capacity.unwrap_or(0)];
    let mut count = buf.len() as CK_ULONG;
    let ptr = match capacity {
        Some(_) => buf.as_mut_ptr(),
        None => std::ptr::null_mut(),
    };
    // SAFETY: `ptr` is null or holds `count` elements; `count` is a valid out-pointer.
    let rv = unsafe { f(slot.id() as _, ptr, &mut count) };
    buf.truncate(count as usize);
    (rv, count, buf)
}

#[test]
fn hidden_mechanisms_are_missing_from_the_token() {
    let t = Test::start();
    let ctx = &t.h.ctx;
    let full_a = ctx.get_mechanism_list(t.h.a).unwrap();
    assert!(full_a.contains(&MechanismType::ECDSA));
    assert!(full_a.contains(&MechanismType::RSA_PKCS_PSS));
    let sa = t.session(t.h.a);
    let sb = t.session(t.h.b);
    let ka = ec_key(&sa).unwrap();
    let digest = [5u8; 32];

    // mode = off: nothing else changes.
    t.fault_text("A", "hide_mechanisms = CKM_ECDSA, CKM_RSA_PKCS_PSS\n");
    let list_a = ctx.get_mechanism_list(t.h.a).unwrap();
    assert_eq!(list_a.len(), full_a.len() - 2);
    assert!(!list_a.contains(&MechanismType::ECDSA));
    assert!(!list_a.contains(&MechanismType::RSA_PKCS_PSS));
    assert!(list_a.contains(&MechanismType::ECC_KEY_PAIR_GEN));
    assert!(ctx
        .get_mechanism_list(t.h.b)
        .unwrap()
        .contains(&MechanismType::ECDSA));

    // The count query, a list one too small, and one large enough (raw calls: `cryptoki`
    // leaves out mechanisms it does not know).
    let (rv, n, _) = raw_mechanism_list(&t.h.module, t.h.a, None);
    assert_eq!(rv, CKR_OK);
    let (rv, count, _) = raw_mechanism_list(&t.h.module, t.h.a, Some(n as usize - 1));
    assert_eq!((rv, count), (CKR_BUFFER_TOO_SMALL, n));
    let (rv, count, raw) = raw_mechanism_list(&t.h.module, t.h.a, Some(n as usize + 5));
    assert_eq!((rv, count), (CKR_OK, n));
    let (_, _, raw_b) = raw_mechanism_list(&t.h.module, t.h.b, Some(n as usize + 5));
    let expected: Vec<CK_MECHANISM_TYPE> = raw_b
        .into_iter()
        .filter(|&m| m != CKM_ECDSA && m != CKM_RSA_PKCS_PSS)
        .collect();
    assert_eq!(raw, expected);

    assert_eq!(
        rv_err(ctx.get_mechanism_info(t.h.a, MechanismType::ECDSA)).0,
        RvError::MechanismInvalid
    );
    ctx.get_mechanism_info(t.h.a, MechanismType::ECC_KEY_PAIR_GEN)
        .unwrap();
    ctx.get_mechanism_info(t.h.b, MechanismType::ECDSA).unwrap();

    // Operations with a hidden mechanism fail at init, counted as injected; the key pair
    // generation uses another mechanism and works.
    let before = t.counters("A");
    let (rv, f) = rv_err(sa.sign(&Mechanism::Ecdsa, ka, &digest));
    assert_eq!(rv, RvError::MechanismInvalid);
    assert!(matches!(f, Function::SignInit), "{f:?}");
    assert_eq!(t.counters("A").injected, before.injected + 1);
    let ka2 = ec_key(&sa).unwrap();
    assert_eq!(
        rv_err(sa.sign(&Mechanism::Ecdsa, ka2, &digest)).0,
        RvError::MechanismInvalid
    );
    let kb = ec_key(&sb).unwrap();
    sb.sign(&Mechanism::Ecdsa, kb, &digest).unwrap();
    // Other mechanisms are untouched.
    roundtrip(&sa, aes_key(&sa).unwrap());

    // Also with another mode: here errors on C_Encrypt only.
    t.fault_text(
        "A",
        "mode = error\nfunctions = C_Encrypt\nhide_mechanisms = 0x1041\n",
    );
    assert!(!ctx
        .get_mechanism_list(t.h.a)
        .unwrap()
        .contains(&MechanismType::ECDSA));
    assert_eq!(
        rv_err(sa.sign(&Mechanism::Ecdsa, ka, &digest)).0,
        RvError::MechanismInvalid
    );

    // Without the file the token has them again.
    t.clear("A");
    assert_eq!(ctx.get_mechanism_list(t.h.a).unwrap().len(), full_a.len());
    sa.sign(&Mechanism::Ecdsa, ka, &digest).unwrap();
}
