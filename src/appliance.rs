//! The appliance's shared state (store, HSM pool, instance record) and instance
//! initialisation.

use crate::config::{Limits, MemberConfig};
use crate::error::{ErrorCode, KmsError};
use crate::hsm::{self, Health, Member, Pool};
use crate::store::records::{InstanceRecord, MemberRecord};
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
    /// Where HSM profiles are looked up first (`[hardening] profiles_dir`).
    profiles_dir: std::path::PathBuf,
    instance: RwLock<Option<InstanceRecord>>,
    /// Serialises `init`.
    init_lock: tokio::sync::Mutex<()>,
    /// Turns true when hkmsd begins to shut down.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The audit trail every request is recorded in.
    pub audit: Arc<crate::audit::trail::Trail>,
}

/// Current time as RFC 3339 UTC with seconds (hkmsd's clock, see [`crate::clock`]).
pub fn now_rfc3339() -> String {
    crate::clock::now_rfc3339()
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
            profiles_dir: crate::hardening::HardeningConfig::default().profiles_dir,
            instance: RwLock::new(instance),
            init_lock: tokio::sync::Mutex::new(()),
            stopping: tokio::sync::watch::Sender::new(false),
            audit: Arc::new(crate::audit::trail::Trail::disabled()),
        }
    }

    /// Sets the audit trail.
    pub fn with_audit(mut self, audit: Arc<crate::audit::trail::Trail>) -> Appliance {
        self.audit = audit;
        self
    }

    /// Sets who may use the Unix socket.
    pub fn with_access(mut self, access: crate::config::AccessConfig) -> Appliance {
        self.access = access;
        self
    }

    /// Sets where HSM profiles are looked up first (members added at run time read theirs).
    pub fn with_profiles_dir(mut self, dir: std::path::PathBuf) -> Appliance {
        self.profiles_dir = dir;
        self
    }

    /// Tells long-lived streams that hkmsd is shutting down.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once hkmsd begins to shut down.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
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

    /// Creates the domain key in the first member that can give it (its profile lets it mark
    /// a wrapping key trusted; configuration order otherwise), copies it to every other member
    /// HSM-to-HSM, and records the instance. Refuses to run twice.
    pub async fn init(&self, so_pin: Option<AuthPin>) -> Result<InstanceRecord, KmsError> {
        let _serial = self.init_lock.lock().await;
        if self.is_initialized() || self.store.instance()?.is_some() {
            return Err(KmsError::new(
                ErrorCode::AlreadyInitialized,
                "the instance is already initialised",
            ));
        }
        let mut members = self.pool.members().to_vec();
        // The domain key is made on the first member that can give it: one whose profile
        // says it can mark a wrapping key trusted (configuration order otherwise).
        if let Some(at) = members.iter().position(|m| m.can_give_domain_key()) {
            members[..=at].rotate_right(1);
        }
        for m in &members {
            if m.health() != Health::Up {
                let last = m.last_error();
                return Err(KmsError::new(
                    ErrorCode::HsmUnavailable,
                    format!(
                        "member {} is not available, every member must be up to initialise: {last}",
                        m.name
                    ),
                ));
            }
        }
        // The domain key is made on the first member that can also give it (a device whose
        // security officer cannot mark a key trusted only receives it).
        let source_at = if members.len() > 1 {
            members
                .iter()
                .position(|m| m.can_give_domain_key())
                .ok_or_else(|| no_giver(&members))?
        } else {
            0
        };
        let mut members = members;
        members.swap(0, source_at);
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

impl Appliance {
    /// Enrols a new HSM into the running cluster. The domain key is copied HSM-to-HSM from
    /// `source` (or any healthy member), which stops taking new requests for the moment the
    /// security officer is logged in; then the new member takes traffic. The enrolment is
    /// recorded so it survives a restart.
    pub async fn add_member(
        &self,
        cfg: MemberConfig,
        source: Option<String>,
        so_pin: AuthPin,
    ) -> Result<(Arc<Member>, String), KmsError> {
        let instance = self.instance()?;
        let _serial = self.init_lock.lock().await;
        if self.pool.member(&cfg.name).is_some() {
            return Err(KmsError::invalid(format!(
                "a member named {:?} exists already",
                cfg.name
            )));
        }
        crate::config::validate_member(&cfg).map_err(KmsError::invalid)?;
        let source = match source {
            Some(name) => self
                .pool
                .member(&name)
                .ok_or_else(|| member_not_found(&name))?,
            None => self
                .pool
                .members()
                .into_iter()
                .find(|m| m.accepts_requests() && m.can_give_domain_key())
                .ok_or_else(|| {
                    KmsError::new(
                        ErrorCode::HsmUnavailable,
                        "no healthy member can give the domain key",
                    )
                })?,
        };
        if !source.can_give_domain_key() {
            return Err(no_giver(std::slice::from_ref(&source)));
        }
        if source.health() != Health::Up {
            return Err(KmsError::new(
                ErrorCode::HsmUnavailable,
                format!("source member {} is not up", source.name),
            ));
        }
        let target = Arc::new(
            crate::hsm::Member::configured(&self.profiles_dir, &cfg).map_err(KmsError::invalid)?,
        );
        let was_draining = source.is_draining();
        source.set_draining(true);
        // Let requests already on the source finish before its user is logged out.
        let idle_by = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while source.sessions_in_use() > 0 && std::time::Instant::now() < idle_by {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let dk_id = instance.domain_key_id.clone();
        let (src, tgt) = (source.clone(), target.clone());
        let ceremony = tokio::task::spawn_blocking(move || {
            // A token that already holds this domain key (re-enrolled) needs no copy.
            if tgt.connect(Some(&dk_id)).is_ok() {
                return Ok(());
            }
            tgt.connect(None)?;
            hsm::domain::transfer(&src, &tgt, &dk_id, &so_pin)
        })
        .await
        .map_err(|e| KmsError::new(ErrorCode::Internal, e.to_string()));
        source.set_draining(was_draining);
        match ceremony? {
            Ok(()) => {}
            Err(e) => {
                let message = match e.rv() {
                    Some(cryptoki::error::RvError::PinIncorrect) => {
                        format!(
                            "the security officer PIN of {} was refused: {e}",
                            source.name
                        )
                    }
                    _ => format!("enrolment of {} failed: {e}", cfg.name),
                };
                return Err(KmsError::new(ErrorCode::HsmError, message));
            }
        }
        self.store.put_member_record(&member_record(&cfg, false))?;
        self.pool.add(target.clone());
        tracing::info!(member = %cfg.name, from = %source.name, "HSM member enrolled");
        Ok((target, source.name.clone()))
    }

    /// Stops (or resumes) sending new requests to a member.
    pub fn drain_member(&self, name: &str, drain: bool) -> Result<Arc<Member>, KmsError> {
        let member = self
            .pool
            .member(name)
            .ok_or_else(|| member_not_found(name))?;
        if drain {
            let others = self
                .pool
                .members()
                .iter()
                .filter(|m| m.name != name && m.accepts_requests())
                .count();
            if others == 0 {
                return Err(KmsError::new(
                    ErrorCode::InvalidState,
                    format!(
                        "{name} is the last member taking requests; add or resume another first"
                    ),
                ));
            }
        }
        member.set_draining(drain);
        tracing::info!(member = %name, drain, "member drain state changed");
        Ok(member)
    }

    /// Removes a member that is drained or down. Recorded so it survives a restart.
    pub fn remove_member(&self, name: &str) -> Result<(), KmsError> {
        let member = self
            .pool
            .member(name)
            .ok_or_else(|| member_not_found(name))?;
        if member.accepts_requests() {
            return Err(KmsError::new(
                ErrorCode::InvalidState,
                format!("drain {name} first (hkms hsm drain {name})"),
            ));
        }
        if self.pool.members().len() == 1 {
            return Err(KmsError::new(
                ErrorCode::InvalidState,
                "the last member cannot be removed",
            ));
        }
        self.store
            .put_member_record(&member_record(member.config(), true))?;
        self.pool.remove(name);
        tracing::info!(member = %name, "HSM member removed");
        Ok(())
    }
}

fn member_not_found(name: &str) -> KmsError {
    KmsError::new(
        ErrorCode::MemberNotFound,
        format!("no HSM member named {name:?}"),
    )
}

fn member_record(cfg: &MemberConfig, removed: bool) -> MemberRecord {
    MemberRecord {
        name: cfg.name.clone(),
        module: cfg.module.display().to_string(),
        token_label: cfg.token_label.clone().unwrap_or_default(),
        token_serial: cfg.token_serial.clone().unwrap_or_default(),
        pin_file: cfg.pin_file.display().to_string(),
        profile: cfg.profile.clone(),
        max_sessions: cfg.max_sessions as u32,
        removed,
    }
}

/// The configuration of a member recorded by `hkms hsm add`.
pub fn member_config(rec: &MemberRecord) -> MemberConfig {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    MemberConfig {
        name: rec.name.clone(),
        module: rec.module.clone().into(),
        token_label: non_empty(&rec.token_label),
        token_serial: non_empty(&rec.token_serial),
        pin_file: rec.pin_file.clone().into(),
        profile: rec.profile.clone(),
        max_sessions: rec.max_sessions as usize,
        inline_calls: None,
    }
}

/// None of `members` can give the domain key: their security officers cannot mark the
/// receiving member's transport key trusted (`trusted = "unsupported"` in their HSM profiles).
fn no_giver(members: &[Arc<Member>]) -> KmsError {
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    KmsError::invalid(format!(
        "member(s) {} cannot give the domain key: their HSM profile says the security officer \
         cannot mark a key trusted (its profile says trusted = unsupported); make another device the source",
        names.join(", ")
    ))
}
