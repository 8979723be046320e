//! The cluster of members: round-robin scheduling, the error table applied, deadlines,
//! retries on another member for operations without lasting side effects, a circuit
//! breaker, and a prober that brings members back.

use super::capability::Need;
use super::error::{Action, HsmError};
use super::member::{Health, Member};
use super::session::SessionGuard;
use cryptoki::session::Session;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a call keeps a CPU or the device busy, which decides where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Microseconds on a software token (AES, HMAC, cached handles): may run inline on the
    /// async worker when the member's profile allows it.
    Light,
    /// A private-key operation (RSA or ECDSA signature, RSA decryption): always on a
    /// blocking thread, so that several run at once on as many CPUs (or device sessions)
    /// while the async workers keep serving.
    Heavy,
    /// Generating a key pair: a blocking thread, under this deadline instead of the call
    /// deadline.
    Generation(Duration),
}

/// Timing and breaker settings of the pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// How long a request waits for a free session on one member.
    pub session_wait: Duration,
    /// Deadline of one operation on one member.
    pub call_timeout: Duration,
    /// Transient failures in a row that take a member out of rotation.
    pub breaker_failures: u32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            session_wait: Duration::from_secs(5),
            call_timeout: Duration::from_secs(2),
            breaker_failures: 3,
        }
    }
}

/// All members of one HSM domain.
#[derive(Debug)]
pub struct Pool {
    members: RwLock<Vec<Arc<Member>>>,
    next: AtomicUsize,
    settings: PoolSettings,
}

/// How often one request may be retried after session or login trouble on one member.
const SAME_MEMBER_RETRIES: usize = 2;

impl Pool {
    pub fn new(members: Vec<Member>, settings: PoolSettings) -> Pool {
        Pool {
            members: RwLock::new(members.into_iter().map(Arc::new).collect()),
            next: AtomicUsize::new(0),
            settings,
        }
    }

    /// The current members, in configuration order.
    pub fn members(&self) -> Vec<Arc<Member>> {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn member(&self, name: &str) -> Option<Arc<Member>> {
        self.members().into_iter().find(|m| m.name == name)
    }

    /// Adds a member that is connected and holds the domain key.
    pub fn add(&self, member: Arc<Member>) {
        self.members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(member);
    }

    /// Removes a member from the pool; in-flight requests on it finish.
    pub fn remove(&self, name: &str) -> Option<Arc<Member>> {
        let mut members = self.members.write().unwrap_or_else(|p| p.into_inner());
        let at = members.iter().position(|m| m.name == name)?;
        Some(members.remove(at))
    }

    /// Connects every member (blocking). Returns the errors of members that stay down.
    pub async fn connect_all(&self, domain_key_id: Option<String>) -> Vec<HsmError> {
        let mut errors = Vec::new();
        for m in self.members() {
            let id = domain_key_id.clone();
            match tokio::task::spawn_blocking(move || m.connect(id.as_deref())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(join) => errors.push(HsmError::NoMemberAvailable {
                    detail: join.to_string(),
                }),
            }
        }
        errors
    }

    /// The next member in round-robin order among those that accept requests, skipping
    /// `tried`. Counting over the eligible members (not all of them) keeps the shares equal
    /// when some are down or drained. Members with a free session go first, so a member
    /// whose sessions are all stuck in a hung call stops receiving requests at once rather
    /// than queueing them until its deadline passes; when every member is busy, members
    /// that look stalled are avoided.
    fn pick(&self, members: &[Arc<Member>], tried: &[usize]) -> Option<usize> {
        let eligible: Vec<usize> = (0..members.len())
            .filter(|i| !tried.contains(i) && members[*i].accepts_requests())
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let free: Vec<usize> = eligible
            .iter()
            .copied()
            .filter(|i| members[*i].has_free_session())
            .collect();
        let moving: Vec<usize> = eligible
            .iter()
            .copied()
            .filter(|i| !members[*i].looks_stalled())
            .collect();
        let choices = [&free, &moving, &eligible]
            .into_iter()
            .find(|c| !c.is_empty())
            .expect("eligible is not empty");
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(choices[turn % choices.len()])
    }

    /// Runs `op` on a session of some healthy member.
    ///
    /// `op` must have no lasting side effect until it returns successfully (encrypt,
    /// decrypt, unwrap into a session, generate in a session before anything is persisted):
    /// it may run again on the same member after a session or login fault, or on another
    /// member after a device fault or a missed deadline.
    pub async fn run<T, F>(&self, op: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: Fn(&Member, &Session) -> Result<T, HsmError> + Send + Sync + 'static,
    {
        self.run_needing(&[], Cost::Light, op).await
    }

    /// Runs `op` like [`Pool::run`], only on members that can do every capability in
    /// `needs` (key specs and algorithms, [`crate::hsm::capability`]), as its [`Cost`] says.
    /// When no member can, it fails at once with [`HsmError::Unsupported`], naming what each
    /// one lacks.
    pub async fn run_needing<T, F>(
        &self,
        needs: &[Need<'_>],
        cost: Cost,
        op: F,
    ) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: Fn(&Member, &Session) -> Result<T, HsmError> + Send + Sync + 'static,
    {
        let op = Arc::new(op);
        let members = self.members();
        // Members that cannot do the operation count as tried already.
        let mut tried = Vec::new();
        let mut reasons = Vec::new();
        for (i, m) in members.iter().enumerate() {
            if let Some((need, why)) = needs.iter().find_map(|n| m.cannot(*n).map(|why| (*n, why)))
            {
                tried.push(i);
                reasons.push(format!("{} {why} ({})", m.name, need.name()));
            }
        }
        // Fail at once when no member can do it (`Unsupported`, final). When some can but
        // all of those are draining or down, the call cannot run now but may later: it is
        // unavailable, with what the serving members lack and why the others do not serve.
        let wanted = || {
            needs
                .iter()
                .map(|n| n.name())
                .collect::<Vec<_>>()
                .join(" and ")
        };
        if !members.is_empty() && tried.len() == members.len() {
            return Err(HsmError::Unsupported {
                capability: wanted(),
                detail: reasons.join("; "),
            });
        }
        let capable_serving =
            || (0..members.len()).any(|i| !tried.contains(&i) && members[i].accepts_requests());
        if !reasons.is_empty() && !capable_serving() {
            for (i, m) in members.iter().enumerate() {
                if !tried.contains(&i) {
                    let state = if m.is_draining() { "draining" } else { "down" };
                    reasons.push(format!("{} can but is {state}", m.name));
                }
            }
            return Err(HsmError::NoMemberAvailable {
                detail: format!("{}: {}", wanted(), reasons.join("; ")),
            });
        }
        let inline_ok = cost == Cost::Light;
        let deadline = match cost {
            Cost::Generation(d) => d,
            _ => self.settings.call_timeout,
        };
        let mut last: Option<HsmError> = None;
        while let Some(index) = self.pick(&members, &tried) {
            tried.push(index);
            let member = &members[index];
            match self.run_on(member, op.clone(), deadline, inline_ok).await {
                Ok(v) => return Ok(v),
                // Queued for a busy or departing member: not the member's fault.
                Err(e @ (HsmError::SessionTimeout { .. } | HsmError::NoMemberAvailable { .. })) => {
                    last = Some(e);
                }
                Err(e) => match e.action() {
                    Action::ClientError | Action::Fail => return Err(e),
                    Action::MarkDown => {
                        member.mark_down(&e);
                        last = Some(e);
                    }
                    _ => {
                        member.record_error(&e);
                        if member.note_failure() >= self.settings.breaker_failures {
                            member.mark_down(&e);
                        }
                        last = Some(e);
                    }
                },
            }
        }
        Err(HsmError::NoMemberAvailable {
            detail: last.map(|e| e.to_string()).unwrap_or_default(),
        })
    }

    /// Runs `op` on one member under the call deadline, repairing sessions and logins in
    /// between tries.
    async fn run_on<T, F>(
        &self,
        member: &Arc<Member>,
        op: Arc<F>,
        deadline: Duration,
        inline_ok: bool,
    ) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: Fn(&Member, &Session) -> Result<T, HsmError> + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            let mut guard = member.session(self.settings.session_wait).await?;
            let started = Instant::now();
            let result = if inline_ok && member.inline_calls() && guard.take_idle() {
                // In-process software token with a session open: the call takes
                // microseconds, less than handing it to another thread and back (`[calls]
                // inline` in the member's profile). Opening and closing sessions stay on
                // blocking threads.
                let result = call_in(&mut guard, &*op);
                if guard.closes_on_drop() {
                    tokio::task::spawn_blocking(move || drop(guard));
                }
                result
            } else {
                let op = op.clone();
                // The guard (and its session permit) moves into the blocking call and is
                // dropped there: a call that hangs keeps its permit, so stuck threads per
                // member never exceed max_sessions, and no session is ever closed on an
                // async worker.
                let call = tokio::task::spawn_blocking(move || {
                    let mut guard = guard;
                    call_in(&mut guard, &*op)
                });
                match tokio::time::timeout(deadline, call).await {
                    Ok(joined) => joined.map_err(|join| HsmError::Other {
                        member: member.name.clone(),
                        message: format!("HSM worker failed: {join}"),
                    })?,
                    Err(_) => {
                        return Err(HsmError::Deadline {
                            member: member.name.clone(),
                            millis: deadline.as_millis() as u64,
                        })
                    }
                }
            };
            let e = match result {
                Ok(v) => {
                    member.record_operation(started.elapsed());
                    return Ok(v);
                }
                Err(e) => e,
            };
            if attempt >= SAME_MEMBER_RETRIES {
                return Err(e);
            }
            attempt += 1;
            member.record_error(&e);
            match e.action() {
                // The session was discarded (closed on a blocking thread); the next try
                // opens one.
                Action::ReopenSession => {}
                Action::Relogin => self.blocking(member, |m| m.relogin()).await?,
                Action::RefreshHandles => {
                    self.blocking(member, |m| {
                        m.clear_handles();
                        Ok(())
                    })
                    .await?
                }
                _ => return Err(e),
            }
        }
    }

    /// Makes every member forget the cached keys of these versions (a key destroyed, or its
    /// material deleted), each on a blocking thread under the call deadline. Best effort:
    /// the store no longer holds what those keys served, so nothing can reach them again;
    /// a member that does not answer drops them when it reconnects.
    pub async fn forget_versions(&self, versions: &[String]) {
        for member in self.members() {
            let versions = versions.to_vec();
            let forgot = self
                .blocking(&member, move |m| {
                    versions.iter().for_each(|v| m.forget_version(v));
                    Ok(())
                })
                .await;
            if let Err(e) = forgot {
                tracing::warn!(member = %member.name, "cached keys not forgotten now: {e}");
            }
        }
    }

    /// Runs a repair step on a blocking thread, under the call deadline.
    async fn blocking(
        &self,
        member: &Arc<Member>,
        f: impl FnOnce(&Member) -> Result<(), HsmError> + Send + 'static,
    ) -> Result<(), HsmError> {
        let m = member.clone();
        match tokio::time::timeout(
            self.settings.call_timeout,
            tokio::task::spawn_blocking(move || f(&m)),
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(HsmError::Other {
                member: member.name.clone(),
                message: join.to_string(),
            }),
            Err(_) => Err(HsmError::Deadline {
                member: member.name.clone(),
                millis: self.settings.call_timeout.as_millis() as u64,
            }),
        }
    }

    /// Starts a reconnect of every member that is down and not already being probed. A
    /// member comes back only after a test operation succeeds; healthy members (even on the
    /// same PKCS#11 library) are not touched. Probes of hung members stay in their own
    /// blocking thread and never hold up the others.
    pub fn probe(&self, domain_key_id: Option<String>) {
        for m in self.members() {
            if m.health() == Health::Up || !m.begin_probe() {
                continue;
            }
            let id = domain_key_id.clone();
            tokio::task::spawn_blocking(move || {
                let result = m.connect(id.as_deref()).and_then(|()| {
                    m.with_login_session(|s| {
                        super::crypto::random(s, 1).map_err(|e| m.err(e))?;
                        Ok(())
                    })
                });
                match result {
                    Ok(()) => tracing::info!(member = %m.name, "HSM member is back"),
                    Err(e) => {
                        m.mark_down(&e);
                        tracing::debug!(member = %m.name, error = %e, "HSM member still down");
                    }
                }
                m.end_probe();
            });
        }
    }
}

/// Runs `op` in the guard's session (opened first if need be), and marks the session for
/// closing when the failure means it is unusable. Dropping the guard returns or closes it.
fn call_in<T>(
    guard: &mut SessionGuard,
    op: &(dyn Fn(&Member, &Session) -> Result<T, HsmError> + Send + Sync),
) -> Result<T, HsmError> {
    let result = match guard.session() {
        Ok(_) => {
            let m = guard.member().clone();
            let session = guard.session().expect("opened above");
            op(&m, session)
        }
        Err(e) => Err(e),
    };
    if matches!(&result, Err(e) if e.action() == Action::ReopenSession) {
        guard.discard();
    }
    result
}
