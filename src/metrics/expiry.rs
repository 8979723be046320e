//! The periodic credential expiry scan of hkmsd: every ClientKey and API key, whether or
//! not anyone uses it, is checked against the warning window of
//! [`crate::access::clientkey::WARN_DAYS`]; keys inside it (or past their end) are logged,
//! and `hkms_client_key_expiry_days{aap,credential}` gives each key's days left.

use crate::access::{apikey, clientkey, manage};
use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::store::AccessStore;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// How long after start the first scan runs.
pub const FIRST_SCAN_DELAY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExpiryLabels {
    pub aap: String,
    pub credential: String,
}

#[derive(Debug, Default)]
struct Expiry {
    days: Family<ExpiryLabels, Gauge>,
    /// The label sets of the last scan, so that deleted credentials disappear.
    shown: Mutex<HashSet<ExpiryLabels>>,
    /// When each credential's warning was last logged: once a day per credential is enough.
    warned: Mutex<HashMap<String, i64>>,
}

static EXPIRY: LazyLock<Expiry> = LazyLock::new(Expiry::default);

/// One credential as the scan saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `ClientKey` or `ApiKey`.
    pub kind: &'static str,
    pub aap: String,
    pub credential: String,
    /// Whole days until hkmsd stops accepting it; negative once past.
    pub days_left: i64,
    /// [`clientkey::standing`]'s label.
    pub state: &'static str,
}

/// Whether a credential in `state` is worth a warning.
pub fn needs_warning(state: &str) -> bool {
    matches!(state, "ExpiringSoon" | "Expired")
}

/// Every ClientKey and API key at `now`.
pub fn credentials(store: &dyn AccessStore, now: i64) -> Result<Vec<Seen>, KmsError> {
    let mut seen = Vec::new();
    for k in manage::client_keys(store, "")? {
        let (days_left, state) = clientkey::standing(k.not_before, k.not_after, k.retire_unix, now);
        seen.push(Seen {
            kind: "ClientKey",
            aap: k.aap_name.clone(),
            credential: k.client_key_id.clone(),
            days_left,
            state,
        });
    }
    for k in apikey::list(store, "")? {
        let (days_left, state) = clientkey::standing(k.not_before, k.not_after, 0, now);
        seen.push(Seen {
            kind: "ApiKey",
            aap: k.aap_name.clone(),
            credential: k.secret_id.clone(),
            days_left,
            state,
        });
    }
    Ok(seen)
}

/// Scans once: updates the gauge, logs a warning (at most once a day) per credential
/// within the warning window or past its end; returns what it saw.
pub fn scan(store: &dyn AccessStore, now: i64) -> Result<Vec<Seen>, KmsError> {
    let seen = credentials(store, now)?;
    let mut shown = EXPIRY.shown.lock().unwrap_or_else(|p| p.into_inner());
    let mut warned = EXPIRY.warned.lock().unwrap_or_else(|p| p.into_inner());
    let ids: HashSet<&str> = seen.iter().map(|s| s.credential.as_str()).collect();
    warned.retain(|id, _| ids.contains(id.as_str()));
    let mut now_shown = HashSet::with_capacity(seen.len());
    for s in &seen {
        let labels = ExpiryLabels {
            aap: s.aap.clone(),
            credential: s.credential.clone(),
        };
        EXPIRY.days.get_or_create(&labels).set(s.days_left);
        now_shown.insert(labels);
        let last = warned.get(&s.credential).copied().unwrap_or(i64::MIN);
        if needs_warning(s.state) && now.saturating_sub(last) >= 86_400 {
            warned.insert(s.credential.clone(), now);
            let hint = match s.kind {
                "ClientKey" => format!("change it (hkms client-key rotate --aap {})", s.aap),
                _ => format!(
                    "create a new one (hkms api-key create --aap {}) and delete this one",
                    s.aap
                ),
            };
            tracing::warn!(kind = s.kind, credential = %s.credential, aap = %s.aap,
                days_left = s.days_left, state = s.state, "credential {}; {hint}",
                if s.state == "Expired" { "has expired" } else { "expires soon" });
        }
    }
    for gone in shown.difference(&now_shown) {
        EXPIRY.days.remove(gone);
    }
    *shown = now_shown;
    Ok(seen)
}

/// Scans shortly after start, then every `every`.
pub async fn run_forever(app: Arc<Appliance>, every: Duration) {
    tokio::time::sleep(FIRST_SCAN_DELAY).await;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = crate::clock::now_unix();
        match scan(&*app.store, now) {
            Ok(seen) => tracing::debug!(
                credentials = seen.len(),
                warned = seen.iter().filter(|s| needs_warning(s.state)).count(),
                "credential expiry scan done"
            ),
            Err(e) => tracing::warn!("credential expiry scan failed: {}", e.message),
        }
    }
}

/// Registers `hkms_client_key_expiry_days`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "hkms_client_key_expiry_days",
        "Whole days until a ClientKey or API key stops being accepted (its expiry, or a \
         ClientKey's retirement); negative once past. Updated by the periodic expiry scan",
        EXPIRY.days.clone(),
    );
}
