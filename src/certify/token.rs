//! Token and library information, mechanisms, login, sessions, the random generator and
//! the final cleanup check.

use super::check::{ck_fail, ensure, rv_of, During, Recorder, Stop, Verdict};
use super::context::Ctx;
use crate::hsm::crypto::keywrap;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Limit;
use serde::Serialize;

/// `C_GetInfo` and `C_GetTokenInfo`, as the report shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Info {
    pub library: Option<LibraryInfo>,
    pub token: Option<TokenInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LibraryInfo {
    pub manufacturer: String,
    pub description: String,
    pub version: String,
    pub cryptoki_version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub hardware_version: String,
    pub firmware_version: String,
    pub max_sessions: Option<u64>,
    pub min_pin_len: usize,
    pub max_pin_len: usize,
}

fn limit(l: Limit) -> Option<u64> {
    match l {
        Limit::Max(n) => Some(n),
        _ => None,
    }
}

/// Reads the library and token information (what the token does not answer stays null).
pub fn info(ctx: &Ctx) -> Info {
    let library = ctx.pkcs11.get_library_info().ok().map(|i| LibraryInfo {
        manufacturer: i.manufacturer_id().trim_end().to_owned(),
        description: i.library_description().trim_end().to_owned(),
        version: i.library_version().to_string(),
        cryptoki_version: i.cryptoki_version().to_string(),
    });
    let token = ctx.pkcs11.get_token_info(ctx.slot).ok().map(|t| TokenInfo {
        label: t.label().trim_end().to_owned(),
        manufacturer: t.manufacturer_id().trim_end().to_owned(),
        model: t.model().trim_end().to_owned(),
        serial: t.serial_number().trim_end().to_owned(),
        hardware_version: t.hardware_version().to_string(),
        firmware_version: t.firmware_version().to_string(),
        max_sessions: limit(t.max_session_count()),
        min_pin_len: t.min_pin_length(),
        max_pin_len: t.max_pin_length(),
    });
    Info { library, token }
}

/// Mechanisms hkms cannot run without, and the functions each must offer.
const REQUIRED: &[(MechanismType, &str)] = &[
    (MechanismType::AES_KEY_GEN, "generate"),
    (MechanismType::AES_KEY_WRAP_PAD, "wrap unwrap"),
    (MechanismType::AES_GCM, "encrypt decrypt"),
    (MechanismType::AES_CBC, "encrypt decrypt"),
    (MechanismType::AES_CBC_PAD, "encrypt decrypt"),
    (MechanismType::AES_ECB, "encrypt"),
    (MechanismType::RSA_PKCS_KEY_PAIR_GEN, "generate_key_pair"),
    (MechanismType::RSA_PKCS_OAEP, "decrypt wrap unwrap"),
];

/// Mechanisms of asymmetric and MAC keys: without one, hkms serves everything else.
const OPTIONAL: &[(MechanismType, &str)] = &[
    (MechanismType::RSA_PKCS_PSS, "sign"),
    (MechanismType::RSA_PKCS, "sign"),
    (MechanismType::ECC_KEY_PAIR_GEN, "generate_key_pair"),
    (MechanismType::ECDSA, "sign"),
    (MechanismType::GENERIC_SECRET_KEY_GEN, "generate"),
    (MechanismType::SHA256_HMAC, "sign"),
    (MechanismType::SHA384_HMAC, "sign"),
    (MechanismType::SHA512_HMAC, "sign"),
];

/// What is wrong with `mechanism` on the token, or None. AES key wrap with padding is
/// asked about under the number the token lists it by (`CKM_AES_KEY_WRAP_KWP` on PKCS#11
/// 3.0 tokens), the one hkms then uses.
fn mechanism_problem(ctx: &Ctx, mechanism: MechanismType, flags: &str) -> Option<String> {
    if !ctx.has(mechanism) {
        return Some(format!("{mechanism} is not listed"));
    }
    let mechanism = match ctx.key_wrap_pad() {
        Some(listed) if mechanism == MechanismType::AES_KEY_WRAP_PAD => listed,
        _ => mechanism,
    };
    let shown = if ctx.key_wrap_pad() == Some(mechanism) {
        keywrap::name(mechanism).to_owned()
    } else {
        mechanism.to_string()
    };
    let info = match ctx.pkcs11.get_mechanism_info(ctx.slot, mechanism) {
        Ok(i) => i,
        Err(e) => return Some(format!("C_GetMechanismInfo({shown}) failed: {e}")),
    };
    let lacking: Vec<&str> = flags
        .split(' ')
        .filter(|f| !match *f {
            "generate" => info.generate(),
            "generate_key_pair" => info.generate_key_pair(),
            "wrap" => info.wrap(),
            "unwrap" => info.unwrap(),
            "encrypt" => info.encrypt(),
            "decrypt" => info.decrypt(),
            "sign" => info.sign(),
            _ => true,
        })
        .collect();
    (!lacking.is_empty()).then(|| format!("{shown} lacks the flags {}", lacking.join(", ")))
}

/// token.info, token.mechanisms, login.user, login.bad_pin, session.limit.
pub fn checks(ctx: &mut Ctx, rec: &mut Recorder) {
    rec.run("token.info", || {
        let i = info(ctx);
        let lib = i
            .library
            .ok_or_else(|| Stop(Verdict::fail("C_GetInfo failed")))?;
        let t = ctx
            .pkcs11
            .get_token_info(ctx.slot)
            .during("C_GetTokenInfo")?;
        ensure(t.token_initialized() && t.user_pin_initialized(), || {
            "the token or its user PIN is not initialised".into()
        })?;
        let v = Verdict::pass(format!(
            "{} {} (library {} {}, PKCS#11 {}), token {:?} model {:?} serial {:?}, firmware {}",
            t.manufacturer_id().trim_end(),
            t.model().trim_end(),
            lib.description,
            lib.version,
            lib.cryptoki_version,
            t.label().trim_end(),
            t.model().trim_end(),
            t.serial_number().trim_end(),
            t.firmware_version()
        ));
        Ok(match limit(t.max_session_count()) {
            Some(n) => v.figure("max_sessions", n as f64),
            None => v,
        })
    });

    rec.run("token.mechanisms", || {
        let missing: Vec<String> = REQUIRED
            .iter()
            .filter_map(|(m, f)| mechanism_problem(ctx, *m, f))
            .collect();
        let optional: Vec<String> = OPTIONAL
            .iter()
            .filter_map(|(m, f)| mechanism_problem(ctx, *m, f))
            .collect();
        let listed = ctx.mechanisms.len() as f64;
        if !missing.is_empty() {
            return Ok(Verdict::fail(format!("required: {}", missing.join("; ")))
                .figure("mechanisms_listed", listed));
        }
        let wrap = match ctx.key_wrap_pad() {
            Some(m) if m != MechanismType::AES_KEY_WRAP_PAD => format!(
                " (AES key wrap with padding as {}, its PKCS#11 3.0 number)",
                keywrap::name(m)
            ),
            _ => String::new(),
        };
        let reason = if optional.is_empty() {
            format!("every mechanism hkms uses is listed with the flags it needs{wrap}")
        } else {
            format!(
                "every required mechanism is listed{wrap}; keys and algorithms needing these \
                 are not served: {}",
                optional.join("; ")
            )
        };
        Ok(Verdict::pass(reason).figure("mechanisms_listed", listed))
    });

    rec.run("login.user", || {
        ctx.login()?;
        let s = ctx.session()?;
        let objects = ctx.visible_objects(&s)?.len();
        ctx.objects_before = Some(objects);
        Ok(Verdict::pass(format!(
            "logged in as the user; {objects} objects visible before the run"
        ))
        .figure("objects_before", objects as f64))
    });

    rec.run("login.bad_pin", || bad_pin(ctx));

    rec.run("session.limit", || {
        const WANT: usize = 8;
        const CAP: usize = 64;
        let mut open: Vec<Session> = Vec::new();
        let mut stopped = None;
        while open.len() < CAP {
            match ctx.pkcs11.open_rw_session(ctx.slot) {
                Ok(s) => open.push(s),
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            }
        }
        let n = open.len();
        drop(open);
        let after = match &stopped {
            None => format!("{n} sessions open at once (stopped trying at {CAP})"),
            Some(e) => format!("{n} sessions open at once, the next one refused: {e}"),
        };
        let v = if n >= WANT {
            Verdict::pass(after)
        } else {
            Verdict::fail(format!(
                "{after}; an hkms member opens up to {WANT} (max_sessions)"
            ))
        };
        Ok(v.rv(stopped.as_ref().and_then(rv_of))
            .figure("sessions_opened", n as f64))
    });
}

fn bad_pin(ctx: &mut Ctx) -> Result<Verdict, Stop> {
    let t = ctx
        .pkcs11
        .get_token_info(ctx.slot)
        .during("C_GetTokenInfo")?;
    if t.user_pin_locked() || t.user_pin_final_try() || t.user_pin_count_low() {
        return Ok(Verdict::skip(
            "the token reports few PIN attempts left: not spending one on a wrong PIN",
        ));
    }
    if t.protected_authentication_path() {
        return Ok(Verdict::skip(
            "the token logs in through a protected authentication path",
        ));
    }
    // A wrong PIN is only checked while logged out; logging out ends the run's login,
    // which is restored right after.
    let s = ctx.session()?;
    match s.logout() {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => {}
        Err(e) => return Err(Stop(ck_fail("C_Logout", e))),
    }
    let attempt = s.login(UserType::User, Some(&ctx.wrong_pin()));
    // One good login right after: the token (SoftHSM2 among them) counts failed attempts,
    // and a successful login resets the count.
    let relogin = ctx.login();
    let after = ctx.pkcs11.get_token_info(ctx.slot).ok();
    relogin?;
    let low_after = after.is_some_and(|t| t.user_pin_count_low());
    let v = match attempt {
        Ok(()) => Verdict::fail("a wrong PIN was accepted"),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Verdict::pass(
            "one wrong PIN refused with CKR_PIN_INCORRECT; the right PIN logged in again",
        )
        .rv(Some(RvError::PinIncorrect)),
        Err(e) => ck_fail("a wrong PIN was refused, but not with CKR_PIN_INCORRECT", e),
    };
    Ok(v.figure("pin_count_low_after", f64::from(u8::from(low_after))))
}

/// random: several lengths, different outputs, and the monobit test of FIPS 140-2.
pub fn random(ctx: &mut Ctx, rec: &mut Recorder) {
    rec.run("random", || {
        let s = ctx.session()?;
        for len in [1usize, 16, 32, 256, 1024, 4096] {
            let v = crate::hsm::crypto::random(&s, len).during("C_GenerateRandom")?;
            ensure(v.len() == len, || {
                format!("asked {len} bytes, got {}", v.len())
            })?;
        }
        let a = crate::hsm::crypto::random(&s, 32).during("C_GenerateRandom")?;
        let b = crate::hsm::crypto::random(&s, 32).during("C_GenerateRandom")?;
        ensure(*a != *b, || "two 32-byte outputs were equal".into())?;
        // FIPS 140-2 monobit test: 20,000 bits hold between 9,726 and 10,274 ones.
        let sample = crate::hsm::crypto::random(&s, 2500).during("C_GenerateRandom")?;
        let ones: u32 = sample.iter().map(|b| b.count_ones()).sum();
        ensure((9726..=10274).contains(&ones), || {
            format!("monobit test failed: {ones} ones in 20000 bits")
        })?;
        Ok(Verdict::pass(format!(
            "lengths 1 to 4096 bytes; outputs differ; {ones} ones in 20000 bits (9726..10274)"
        ))
        .figure("monobit_ones", f64::from(ones)))
    });
}

/// cleanup: destroys any token object of this run still there, and compares the objects
/// the user sees with those seen before the run.
pub fn cleanup(ctx: &mut Ctx, rec: &mut Recorder) {
    let id = "cleanup";
    let started = std::time::Instant::now();
    let v = (|| -> Result<Verdict, Stop> {
        ctx.login()?;
        let s = ctx.session()?;
        let swept = ctx.sweep(&s)?;
        let left = swept.left;
        let after = ctx.visible_objects(&s)?.len();
        let Some(before) = ctx.objects_before else {
            return Ok(Verdict::skip(
                "the objects before the run could not be counted",
            ));
        };
        let v = if left > 0 {
            Verdict::fail(format!(
                "{left} token objects named {} were left by a check and destroyed now",
                ctx.run_id
            ))
        } else if after != before {
            Verdict::fail(format!(
                "{before} objects before the run, {after} after (none named {})",
                ctx.run_id
            ))
        } else {
            Verdict::pass(format!(
                "{after} objects before and after; none named {} left",
                ctx.run_id
            ))
        };
        let mut v = v;
        if swept.earlier > 0 {
            v.reason.push_str(&format!(
                "; warning: {} objects named hkms-certify-* from an earlier, interrupted run \
                 are on the token (left alone)",
                swept.earlier
            ));
        }
        Ok(v.figure("objects_before", before as f64)
            .figure("objects_after", after as f64))
    })();
    let v = match v {
        Ok(v) | Err(Stop(v)) => v,
    };
    rec.record(id, v, started.elapsed().as_secs_f64() * 1000.0);
}
