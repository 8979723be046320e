//! The appliance's shared state (store, HSM pool, instance record) and instance
//! initialisation.

use crate::config::Limits;
use crate::error::{ErrorCode, KmsError};
use crate::hsm::{self, Health, Pool};
use crate::store::records::InstanceRecord;
use crate::store::Store;
use cryptoki::types::AuthPin;
use std::sync::{Arc, RwLock};

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Appliance {
    pub store: Arc<dyn Store>,
    pub pool: Arc<Pool>,
    pub limits: Limits,
    /// Who may use the Unix socket (`[access]`).
    pub access: crate::config::AccessConfig,
    instance: RwLock<Option<InstanceRecord>>,
    /// Serialises `init`.
    init_lock: tokio::sync::Mutex<()>,
}

/// Current time as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    let t = openssl::asn1::Asn1Time::days_from_now(0)
        .map(|t| t.to_string())
        .unwrap_or_default();
    // Asn1Time prints "Nov 23 08:16:58 2026 GMT"; convert to RFC 3339.
    rfc3339_from_asn1(&t).unwrap_or(t)
}

fn rfc3339_from_asn1(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 5 {
        return None;
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[0])? + 1;
    let day: u32 = parts[1].parse().ok()?;
    Some(format!("{}-{month:02}-{day:02}T{}Z", parts[3], parts[2]))
}

impl Appliance {
    pub fn new(
        store: Arc<dyn Store>,
        pool: Arc<Pool>,
        limits: Limits,
        instance: Option<InstanceRecord>,
    ) -> Appliance {
        Appliance {
            store,
            pool,
            limits,
            access: crate::config::AccessConfig::default(),
            instance: RwLock::new(instance),
            init_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Sets who may use the Unix socket.
    pub fn with_access(mut self, access: crate::config::AccessConfig) -> Appliance {
        self.access = access;
        self
    }

    /// The instance record, or `NotInitialized`.
    pub fn instance(&self) -> Result<InstanceRecord, KmsError> {
        self.instance
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                KmsError::new(
                    ErrorCode::NotInitialized,
                    "the instance is not initialised; run `hkms init`",
                )
            })
    }

    pub fn is_initialized(&self) -> bool {
        self.instance().is_ok()
    }

    /// Creates the domain key in the first member, copies it to every other member
    /// HSM-to-HSM, and records the instance. Refuses to run twice.
    pub async fn init(&self, so_pin: Option<AuthPin>) -> Result<InstanceRecord, KmsError> {
        let _serial = self.init_lock.lock().await;
        if self.is_initialized() || self.store.instance()?.is_some() {
            return Err(KmsError::new(
                ErrorCode::AlreadyInitialized,
                "the instance is already initialised",
            ));
        }
        let members = self.pool.members().to_vec();
        for m in &members {
            if m.health() != Health::Up {
                let (_, _, last) = m.stats();
                return Err(KmsError::new(
                    ErrorCode::HsmUnavailable,
                    format!(
                        "member {} is not available, every member must be up to initialise: {last}",
                        m.name
                    ),
                ));
            }
        }
        if members.len() > 1 && so_pin.is_none() {
            return Err(KmsError::invalid(format!(
                "copying the domain key to {} more member(s) needs the security officer PIN of \
                 member {} (hkms init --so-pin-file FILE)",
                members.len() - 1,
                members[0].name
            )));
        }
        let record = InstanceRecord {
            instance_id: format!("hkms-{}", uuid::Uuid::new_v4().simple()),
            domain_key_id: uuid::Uuid::new_v4().to_string(),
            created: now_rfc3339(),
        };
        let dk_id = record.domain_key_id.clone();
        let ceremony = tokio::task::spawn_blocking(move || {
            let source = &members[0];
            hsm::domain::create(source, &dk_id)?;
            for target in &members[1..] {
                let pin = so_pin.as_ref().expect("checked above");
                if let Err(e) = hsm::domain::transfer(source, target, &dk_id, pin) {
                    for m in &members {
                        hsm::domain::destroy(m, &dk_id);
                    }
                    return Err(e);
                }
                tracing::info!(from = %source.name, to = %target.name, "domain key copied HSM-to-HSM");
            }
            Ok(())
        })
        .await
        .map_err(|e| KmsError::new(ErrorCode::Internal, e.to_string()))?;
        if let Err(e) = ceremony {
            let message = match e.rv() {
                Some(cryptoki::error::RvError::PinIncorrect) => {
                    format!("the security officer PIN was refused: {e}")
                }
                _ => format!("initialisation failed, nothing was recorded: {e}"),
            };
            return Err(KmsError::new(ErrorCode::HsmError, message));
        }
        self.store.create_instance(&record)?;
        *self.instance.write().unwrap_or_else(|p| p.into_inner()) = Some(record.clone());
        tracing::info!(instance = %record.instance_id, "instance initialised");
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn asn1_time_converts_to_rfc3339() {
        assert_eq!(
            super::rfc3339_from_asn1("Nov  3 08:16:58 2026 GMT").as_deref(),
            Some("2026-11-03T08:16:58Z")
        );
        assert!(super::now_rfc3339().ends_with('Z'));
    }
}
