//! The cluster of members: round-robin scheduling, the error table applied, retries on
//! another member for operations without lasting side effects, and a prober that brings
//! members back.

use super::error::{Action, HsmError};
use super::member::{Health, Member, SessionGuard};
use cryptoki::session::Session;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// All members of one HSM domain.
#[derive(Debug)]
pub struct Pool {
    members: Vec<Arc<Member>>,
    next: AtomicUsize,
    session_wait: Duration,
}

/// How often one request may be retried after session or login trouble on one member.
const SAME_MEMBER_RETRIES: usize = 2;

impl Pool {
    pub fn new(members: Vec<Member>, session_wait: Duration) -> Pool {
        Pool {
            members: members.into_iter().map(Arc::new).collect(),
            next: AtomicUsize::new(0),
            session_wait,
        }
    }

    pub fn members(&self) -> &[Arc<Member>] {
        &self.members
    }

    /// Connects every member (blocking). Returns the errors of members that stay down.
    pub async fn connect_all(&self, domain_key_id: Option<String>) -> Vec<HsmError> {
        let mut errors = Vec::new();
        for m in &self.members {
            let m = m.clone();
            let id = domain_key_id.clone();
            let r = tokio::task::spawn_blocking(move || m.connect(id.as_deref())).await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(join) => errors.push(HsmError::NoMemberAvailable {
                    detail: join.to_string(),
                }),
            }
        }
        errors
    }

    /// The next healthy member in round-robin order, skipping those in `tried`.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|i| !tried.contains(i) && self.members[*i].health() == Health::Up)
    }

    /// Runs `op` on a session of some healthy member.
    ///
    /// `op` must have no lasting side effect until it returns successfully (encrypt,
    /// decrypt, unwrap into a session, generate in a session before anything is persisted):
    /// it may run again on the same member after a session or login fault, or on another
    /// member after a device fault.
    pub async fn run<T, F>(&self, op: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: Fn(&Member, &Session) -> Result<T, HsmError> + Send + Sync + 'static,
    {
        let op = Arc::new(op);
        let mut tried = Vec::new();
        let mut last: Option<HsmError> = None;
        while let Some(index) = self.pick(&tried) {
            tried.push(index);
            let member = self.members[index].clone();
            match self.run_on(&member, op.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => match e.action() {
                    Action::ClientError | Action::Fail => return Err(e),
                    Action::MarkDown => {
                        member.mark_down(&e);
                        last = Some(e);
                    }
                    _ => {
                        member.record_error(&e);
                        last = Some(e);
                    }
                },
            }
        }
        Err(HsmError::NoMemberAvailable {
            detail: last.map(|e| e.to_string()).unwrap_or_default(),
        })
    }

    /// Runs `op` on one member, repairing sessions and logins in between tries.
    async fn run_on<T, F>(&self, member: &Arc<Member>, op: Arc<F>) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: Fn(&Member, &Session) -> Result<T, HsmError> + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            let guard = member.session(self.session_wait).await?;
            let op = op.clone();
            let (mut guard, result) = tokio::task::spawn_blocking(move || {
                let mut guard: SessionGuard = guard;
                let result = match guard.session() {
                    Ok(_) => {
                        let m = guard.member().clone();
                        let session = guard.session().expect("opened above");
                        op(&m, session)
                    }
                    Err(e) => Err(e),
                };
                (guard, result)
            })
            .await
            .map_err(|join| HsmError::Other {
                member: member.name.clone(),
                message: format!("HSM worker failed: {join}"),
            })?;
            match result {
                Ok(v) => {
                    member.record_operation();
                    return Ok(v);
                }
                Err(e) if attempt < SAME_MEMBER_RETRIES => {
                    attempt += 1;
                    match e.action() {
                        Action::ReopenSession => {
                            guard.discard();
                            member.record_error(&e);
                        }
                        Action::Relogin => {
                            member.record_error(&e);
                            let m = member.clone();
                            drop(guard);
                            tokio::task::spawn_blocking(move || m.relogin())
                                .await
                                .map_err(|j| HsmError::Other {
                                    member: member.name.clone(),
                                    message: j.to_string(),
                                })??;
                        }
                        Action::RefreshHandles => {
                            member.record_error(&e);
                            let m = member.clone();
                            drop(guard);
                            let _ = tokio::task::spawn_blocking(move || m.clear_handles()).await;
                        }
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Tries to reconnect every member that is down. Returns how many came back.
    pub async fn probe(&self, domain_key_id: Option<String>) -> usize {
        let mut back = 0;
        for m in &self.members {
            if m.health() == Health::Up {
                continue;
            }
            let member = m.clone();
            let id = domain_key_id.clone();
            let ok = tokio::task::spawn_blocking(move || {
                member.connect(id.as_deref())?;
                member.with_login_session(|s| {
                    super::crypto::random(s, 1).map_err(|e| member.err(e))?;
                    Ok(())
                })
            })
            .await;
            match ok {
                Ok(Ok(())) => {
                    tracing::info!(member = %m.name, "HSM member is back");
                    back += 1;
                }
                Ok(Err(e)) => {
                    m.mark_down(&e);
                    tracing::debug!(member = %m.name, error = %e, "HSM member still down");
                }
                Err(_) => {}
            }
        }
        back
    }
}
