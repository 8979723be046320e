//! Several sessions at once, and hkms's HSM pool recovering on this token: after every
//! session under it is closed, and after a logout.

use super::aes::{generated_aes, host_random, known_secret};
use super::check::{ensure, During, Recorder, Stop, Verdict};
use super::context::Ctx;
use crate::hsm::pool::{Pool, PoolSettings};
use crate::hsm::{crypto, HsmError, Member};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, KeyType};
use cryptoki::session::Session;
use std::time::Duration;

const THREADS: usize = 4;
const OPS_PER_THREAD: usize = 200;

/// concurrency.sessions, recovery.sessions_closed, recovery.relogin.
pub fn checks(ctx: &mut Ctx, rec: &mut Recorder) {
    rec.run("concurrency.sessions", || concurrency(ctx));
    let pool = if rec.selected("recovery.sessions_closed") || rec.selected("recovery.relogin") {
        Some(build_pool(ctx))
    } else {
        None
    };
    rec.run("recovery.sessions_closed", || {
        let pool = pool
            .as_ref()
            .expect("built when selected")
            .as_ref()
            .map_err(clone_stop)?;
        sessions_closed(ctx, pool)
    });
    // Whatever happened, the run continues with sessions and a login of its own.
    let _ = ctx.login();
    rec.run("recovery.relogin", || {
        let pool = pool
            .as_ref()
            .expect("built when selected")
            .as_ref()
            .map_err(clone_stop)?;
        relogin(ctx, pool)
    });
    let _ = ctx.login();
}

fn clone_stop(s: &Stop) -> Stop {
    Stop(s.0.clone())
}

fn concurrency(ctx: &Ctx) -> Result<Verdict, Stop> {
    ctx.require(&[MechanismType::AES_GCM])?;
    let s = ctx.session()?;
    // A session object is visible to every session of the application.
    let (key, value) = known_secret(
        &s,
        KeyType::AES,
        32,
        &[Attribute::Encrypt(true), Attribute::Decrypt(true)],
    )?;
    // One session per thread (a session is not shared between threads).
    let sessions = (0..THREADS)
        .map(|_| ctx.session())
        .collect::<Result<Vec<_>, Stop>>()?;
    let started = std::time::Instant::now();
    let results: Vec<Result<usize, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(t, own)| {
                let value = &value;
                scope.spawn(move || -> Result<usize, String> {
                    let mut good = 0;
                    for i in 0..OPS_PER_THREAD {
                        let mut iv = [0u8; 12];
                        iv[..4].copy_from_slice(&(t as u32).to_be_bytes());
                        iv[4..].copy_from_slice(&(i as u64).to_be_bytes());
                        let pt = host_random(64);
                        let ct = crypto::gcm_encrypt(&own, key, &iv, b"t", &pt)
                            .map_err(|e| format!("thread {t}: {e}"))?;
                        let mut tag = [0u8; 16];
                        let mut want = openssl::symm::encrypt_aead(
                            openssl::symm::Cipher::aes_256_gcm(),
                            value,
                            Some(&iv),
                            b"t",
                            &pt,
                            &mut tag,
                        )
                        .map_err(|e| e.to_string())?;
                        want.extend_from_slice(&tag);
                        if ct != want {
                            return Err(format!("thread {t}: a wrong ciphertext at operation {i}"));
                        }
                        good += 1;
                    }
                    Ok(good)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut total = 0;
    for r in results {
        total += r.map_err(|e| Stop(Verdict::fail(e)))?;
    }
    Ok(Verdict::pass(format!(
        "{THREADS} threads, one session each, {total} AES-GCM encryptions with one shared key, \
         every one equal to OpenSSL's"
    ))
    .figure("threads", THREADS as f64)
    .figure("operations", total as f64)
    .figure("ops_per_s", total as f64 / secs.max(1e-9)))
}

/// One member of hkms's HSM pool on the token, built and connected as hkmsd does.
fn build_pool(ctx: &Ctx) -> Result<(tokio::runtime::Runtime, Pool), Stop> {
    let member = ctx.member("certify-pool")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Stop(Verdict::fail(format!("cannot start a runtime: {e}"))))?;
    let settings = PoolSettings {
        call_timeout: Duration::from_secs(10),
        ..PoolSettings::default()
    };
    Ok((runtime, Pool::new(vec![member], settings)))
}

/// What the pool is asked to do: generate a private AES key in its session (needs the
/// login) and encrypt with it.
fn pool_call(pool: &(tokio::runtime::Runtime, Pool)) -> Result<Vec<u8>, HsmError> {
    let (runtime, pool) = pool;
    runtime.block_on(pool.run(|m: &Member, s: &Session| {
        let key = generated_aes(s, 32).map_err(|e| m.err(e))?;
        let ct = crypto::gcm_encrypt(s, key, &[1u8; 12], b"", b"pool call").map_err(|e| m.err(e));
        let _ = s.destroy_object(key);
        ct
    }))
}

fn sessions_closed(ctx: &mut Ctx, pool: &(tokio::runtime::Runtime, Pool)) -> Result<Verdict, Stop> {
    ctx.require(&[MechanismType::AES_KEY_GEN, MechanismType::AES_GCM])?;
    pool_call(pool).during("the pool's first call")?;
    pool_call(pool).during("the pool's second call")?;
    crate::hsm::module::close_all_sessions(&ctx.opts.module, ctx.slot)
        .during("C_CloseAllSessions")?;
    ctx.forget_sessions();
    let started = std::time::Instant::now();
    let first = pool_call(pool);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match first {
        Ok(ct) => {
            ensure(ct.len() == 9 + 16, || {
                "a ciphertext of the wrong length".into()
            })?;
            Ok(Verdict::pass(
                "after C_CloseAllSessions (every session gone, the login with them) the pool's \
                 next call succeeded: it reopened a session and logged in again",
            )
            .figure("recovery_ms", ms))
        }
        Err(e) => {
            let rv = e.rv();
            let later = pool_call(pool).is_ok();
            Ok(Verdict::fail(format!(
                "after C_CloseAllSessions the pool's next call failed: {e}{}",
                if later {
                    " (the call after it succeeded)"
                } else {
                    ""
                }
            ))
            .rv(rv))
        }
    }
}

fn relogin(ctx: &mut Ctx, pool: &(tokio::runtime::Runtime, Pool)) -> Result<Verdict, Stop> {
    ctx.require(&[MechanismType::AES_KEY_GEN, MechanismType::AES_GCM])?;
    pool_call(pool).during("the pool's call before the logout")?;
    let s = ctx.session()?;
    s.logout().during("C_Logout")?;
    let started = std::time::Instant::now();
    let after = pool_call(pool);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(s);
    match after {
        Ok(_) => Ok(Verdict::pass(
            "after a C_Logout under it, the pool's next call logged in again and succeeded",
        )
        .figure("recovery_ms", ms)),
        Err(e) => {
            let rv = e.rv();
            Ok(Verdict::fail(format!("after a C_Logout the pool's next call failed: {e}")).rv(rv))
        }
    }
}
