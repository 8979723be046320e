//! Operation sessions lent by a member, as RAII guards: how a member lends them
//! ([`Member::session`]) and takes them back.

use super::error::HsmError;
use super::member::{lock, Member};
use cryptoki::session::Session;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// An operation session lent by a member; returned to the member's idle list when dropped
/// (unless it failed in a way that makes it unusable). `Send`, not shared: it moves into
/// the blocking thread that uses it, and is dropped there, because closing a session is a
/// PKCS#11 call that may block (the pool's inline calls hand a guard that would close its
/// session to a blocking thread to drop).
pub struct SessionGuard {
    member: Arc<Member>,
    session: Option<Session>,
    generation: u64,
    discard: bool,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGuard")
            .field("member", &self.member.name)
            .field("open", &self.session.is_some())
            .finish()
    }
}

impl SessionGuard {
    /// A guard holding `permit` for a session of `member`'s connection `generation`.
    pub(super) fn new(
        member: Arc<Member>,
        generation: u64,
        permit: OwnedSemaphorePermit,
    ) -> SessionGuard {
        SessionGuard {
            member,
            session: None,
            generation,
            discard: false,
            _permit: permit,
        }
    }

    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }

    /// The session, opened on first use. Blocking.
    pub fn session(&mut self) -> Result<&Session, HsmError> {
        if self.session.is_none() {
            self.session = Some(self.member.take_idle_or_open()?);
        }
        Ok(self.session.as_ref().expect("just set"))
    }

    /// Takes an idle session already open, without opening one (no PKCS#11 call);
    /// false when there is none.
    pub fn take_idle(&mut self) -> bool {
        if self.session.is_none() {
            self.session = lock(&self.member.idle).pop();
        }
        self.session.is_some()
    }

    /// Closes the session instead of returning it to the pool.
    pub fn discard(&mut self) {
        self.discard = true;
    }

    /// Whether dropping the guard closes its session (a PKCS#11 call).
    pub fn closes_on_drop(&self) -> bool {
        self.session.is_some()
            && (self.discard || self.member.generation.load(Ordering::SeqCst) != self.generation)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let current = self.member.generation.load(Ordering::SeqCst) == self.generation;
            if !self.discard && current {
                lock(&self.member.idle).push(s);
            }
        }
    }
}

impl Member {
    /// Borrows an operation session, waiting at most `wait` for one to become free. Gives up
    /// early when the member leaves rotation while we wait (a hung member keeps its sessions).
    pub async fn session(self: &Arc<Self>, wait: Duration) -> Result<SessionGuard, HsmError> {
        const SLICE: Duration = Duration::from_millis(25);
        let started = std::time::Instant::now();
        // One acquire future for the whole wait keeps our place in the semaphore's queue.
        let acquire = self.permits.clone().acquire_owned();
        tokio::pin!(acquire);
        let permit = loop {
            tokio::select! {
                permit = &mut acquire => break permit.map_err(|_| self.not_connected())?,
                _ = tokio::time::sleep(SLICE) => {
                    if !self.accepts_requests() || self.looks_stalled() {
                        return Err(HsmError::NoMemberAvailable {
                            detail: format!("{} left rotation or stalled", self.name),
                        });
                    }
                    if started.elapsed() >= wait {
                        return Err(HsmError::SessionTimeout {
                            member: self.name.clone(),
                            secs: wait.as_secs(),
                        });
                    }
                }
            }
        };
        Ok(SessionGuard::new(
            self.clone(),
            self.generation.load(Ordering::SeqCst),
            permit,
        ))
    }

    fn take_idle_or_open(&self) -> Result<Session, HsmError> {
        if let Some(s) = lock(&self.idle).pop() {
            return Ok(s);
        }
        self.open_session()
    }
}
