//! PKCS#11 libraries, loaded and initialised once per process and path.
//!
//! `C_Initialize` must run once per library per process; members that use the same library
//! share one [`Pkcs11`] context. The library is initialised with OS locking: SoftHSM2 (and
//! most vendor libraries) turn their internal locks off otherwise.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

static LOADED: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// Returns the process-wide context for the library at `path`, loading and initialising it
/// on first use.
pub fn load(path: &Path) -> Result<Pkcs11, String> {
    let registry = LOADED.get_or_init(|| Mutex::new(HashMap::new()));
    let mut loaded = registry.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = loaded.get(path) {
        return Ok(ctx.clone());
    }
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let ctx = Pkcs11::new(path).map_err(|e| e.to_string())?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(format!("C_Initialize failed: {e}")),
    }
    loaded.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// Closes every session this process has on the token in `slot` (`C_CloseAllSessions`), as
/// a device reset or another part of the application would. Sessions held elsewhere become
/// invalid handles; the login ends with the last session.
pub fn close_all_sessions(path: &Path, slot: cryptoki::slot::Slot) -> cryptoki::error::Result<()> {
    super::ffi::close_all_sessions(path, slot)
}
