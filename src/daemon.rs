//! hkmsd start-up and serving.
//!
//! Order: load config, open the store, load PKCS#11 libraries and log in to every member,
//! bind the socket (and the optional TCP listener, with its TLS files loaded), then serve
//! until SIGTERM/SIGINT.

use crate::appliance::Appliance;
use crate::authn::tls::RemoteAuth;
use crate::config::{Config, MemberConfig};
use crate::hsm::pool::PoolSettings;
use crate::hsm::Pool;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::asymmetric_service_server::AsymmetricServiceServer;
use crate::proto::crypto_service_server::CryptoServiceServer;
use crate::proto::key_service_server::KeyServiceServer;
use crate::service::{admin::AdminApi, asymmetric::AsymmetricApi, crypto::CryptoApi, keys::KeyApi};
use crate::store::{SledStore, Store};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

/// How long requests in flight may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Builds the appliance from its configuration: opens the store and connects the members.
pub async fn build(config: &Config) -> Result<Arc<Appliance>, String> {
    let store = SledStore::open(&config.store.path).map_err(|e| e.to_string())?;
    let instance = store.instance().map_err(|e| e.to_string())?;
    // The config file's members, then what operators changed at run time.
    let records = store.member_records().map_err(|e| e.to_string())?;
    let mut member_configs: Vec<MemberConfig> = config
        .members
        .iter()
        .filter(|m| !records.iter().any(|r| r.removed && r.name == m.name))
        .cloned()
        .collect();
    for r in records.iter().filter(|r| !r.removed) {
        if !member_configs.iter().any(|m| m.name == r.name) {
            member_configs.push(crate::appliance::member_config(r));
        }
    }
    let members = member_configs
        .iter()
        .map(|m| crate::hsm::Member::configured(&config.hardening.profiles_dir, m))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = Arc::new(Pool::new(
        members,
        PoolSettings {
            session_wait: Duration::from_secs(config.limits.session_wait_secs),
            call_timeout: Duration::from_millis(config.limits.hsm_call_timeout_ms),
            breaker_failures: config.limits.breaker_failures,
        },
    ));
    let dk = instance.as_ref().map(|i| i.domain_key_id.clone());
    let errors = pool.connect_all(dk).await;
    for e in &errors {
        tracing::error!("HSM member unavailable: {e}");
    }
    if !pool.members().is_empty() && errors.len() == pool.members().len() {
        let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(format!(
            "no HSM member could be used:\n  {}",
            all.join("\n  ")
        ));
    }
    match &instance {
        Some(i) => tracing::info!(instance = %i.instance_id, "instance loaded"),
        None => tracing::warn!("instance not initialised yet; run `hkms init`"),
    }
    let audit_dir = config.audit.dir_for(&config.store.path);
    let (trail, recovered) = crate::audit::trail::Trail::open(&config.audit, &audit_dir)?;
    if !trail.enabled() {
        tracing::warn!(
            "the audit trail is turned off ([audit] enabled = false): requests are not recorded"
        );
    }
    let app = Arc::new(
        Appliance::new(Arc::new(store), pool, config.limits.clone(), instance)
            .with_access(config.access.clone())
            .with_profiles_dir(config.hardening.profiles_dir.clone())
            .with_audit(Arc::new(trail)),
    );
    let started = crate::audit::record::Record::own("Start", recovered, "OK");
    app.audit.append(started).await.map_err(|e| {
        format!(
            "cannot write the audit trail in {}: {e}",
            audit_dir.display()
        )
    })?;
    if app.instance().is_ok() {
        match crate::keys::migrate_tokens(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tokens = n, "key tokens migrated to the current version"),
            Err(e) => tracing::warn!("key token migration not run: {}", e.message),
        }
    }
    Ok(app)
}

/// Binds the Unix socket (replacing a stale one) with the configured permissions.
pub fn bind(config: &Config) -> Result<tokio::net::UnixListener, String> {
    let path = &config.listen.socket;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("{} is in use by another hkmsd", path.display()));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(config.listen.socket_mode),
    )
    .map_err(|e| format!("cannot set permissions on {}: {e}", path.display()))?;
    Ok(listener)
}

/// The TCP listener with mutual TLS, bound and ready before lock-down.
#[derive(Debug)]
pub struct TcpListening {
    pub listener: std::net::TcpListener,
    pub auth: Arc<RemoteAuth>,
}

/// Binds `[listen] tcp` and loads its certificate, key and gateway CA bundle; `None` when
/// no TCP listener is configured.
pub fn bind_tcp(config: &Config, app: &Appliance) -> Result<Option<TcpListening>, String> {
    let l = &config.listen;
    let (Some(addr), Some(cert), Some(key)) = (l.tcp, &l.tls_cert, &l.tls_key) else {
        return Ok(None);
    };
    let auth = RemoteAuth::load(cert, key, l.gateway_ca.as_deref(), app.store.clone())
        .map_err(|e| e.to_string())?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok(Some(TcpListening {
        listener,
        auth: Arc::new(auth),
    }))
}

/// Every service, behind the authentication layer.
fn router(
    app: &Arc<Appliance>,
) -> tonic::transport::server::Router<
    tower::layer::util::Stack<
        tonic::service::InterceptorLayer<crate::authn::peer::PeerAuth>,
        tower::layer::util::Stack<crate::audit::layer::AuditLayer, tower::layer::util::Identity>,
    >,
> {
    tonic::transport::Server::builder()
        // Every call is recorded in the audit trail, refused ones included, before it is
        // answered (relayed requests are recorded by the fronts, one by one).
        .layer(crate::audit::layer::AuditLayer(app.clone()))
        // Every call is authenticated first: peer credentials on the Unix socket, the
        // handshake's certificate on the TCP listener.
        .layer(tonic::service::InterceptorLayer::new(
            crate::authn::peer::PeerAuth::new(app.access.clone(), app.store.clone()),
        ))
        .add_service(KeyServiceServer::new(KeyApi(app.clone())))
        .add_service(CryptoServiceServer::new(CryptoApi(app.clone())))
        .add_service(AsymmetricServiceServer::new(AsymmetricApi(app.clone())))
        .add_service(AdminServiceServer::new(AdminApi(app.clone())))
        .add_service(
            crate::proto::access_service_server::AccessServiceServer::new(
                crate::service::access::AccessApi(app.clone()),
            ),
        )
        .add_service(crate::proto::audit_service_server::AuditServiceServer::new(
            crate::service::audit::AuditApi(app.clone()),
        ))
        .add_service(
            crate::proto::secrets_service_server::SecretsServiceServer::new(
                crate::service::secrets::SecretsApi(app.clone()),
            ),
        )
        .add_service(
            crate::proto::application_service_server::ApplicationServiceServer::new(
                crate::service::relay::RelayApi(crate::front::Fronts::new(app.clone())),
            ),
        )
}

/// Serves gRPC on `listener` (and on the TCP listener, if any) until a shutdown signal.
pub async fn serve(
    app: Arc<Appliance>,
    listener: tokio::net::UnixListener,
    tcp: Option<TcpListening>,
) -> Result<(), String> {
    let prober = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_millis(app.limits.probe_interval_ms));
            loop {
                tick.tick().await;
                let dk = app.instance().ok().map(|i| i.domain_key_id);
                app.pool.probe(dk);
            }
        })
    };
    if let Some(warning) = crate::clock::test_clock_warning() {
        tracing::warn!("{warning}");
    }
    let jobs = tokio::spawn(crate::jobs::run_forever(
        app.clone(),
        Duration::from_secs(app.limits.jobs_interval_secs.max(1)),
    ));
    let checkpoints = tokio::spawn(crate::audit::checkpoint::run_forever(
        app.clone(),
        app.audit.checkpoint_interval(),
    ));
    let _file_size = file_size_signal();
    // Connections are watched for reading only (see `quiet_unix`).
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::UnixListenerStream::new(listener),
        |accepted| accepted.and_then(crate::quiet_unix::QuietUnixStream::new),
    );
    let mut servers = vec![tokio::spawn(
        router(&app).serve_with_incoming_shutdown(incoming, app.stopping()),
    )];
    if let Some(tcp) = tcp {
        let addr = tcp.listener.local_addr().ok();
        let listener = tokio::net::TcpListener::from_std(tcp.listener)
            .map_err(|e| format!("cannot register the TCP listener: {e}"))?;
        tracing::info!(tcp = ?addr, gateways = ?tcp.auth, "listening on TCP (mutual TLS)");
        let incoming = crate::authn::tls::incoming(listener, tcp.auth);
        servers.push(tokio::spawn(
            router(&app).serve_with_incoming_shutdown(incoming, app.stopping()),
        ));
    }
    tracing::info!("hkmsd ready");
    shutdown_signal().await;
    tracing::info!("shutting down");
    // Ends the servers' accept loops and the relay streams between requests.
    app.begin_shutdown();
    prober.abort();
    jobs.abort();
    // Requests in flight may finish; idle client connections do not hold the daemon up.
    let all = futures_join(servers);
    let result = match tokio::time::timeout(SHUTDOWN_GRACE, all).await {
        Ok(results) => results.into_iter().try_for_each(|r| match r {
            Ok(r) => r.map_err(|e| format!("gRPC server failed: {e}")),
            Err(join) => Err(format!("gRPC server failed: {join}")),
        }),
        Err(_) => Ok(()),
    };
    // The checkpoint task signs a last checkpoint once the servers are done.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, checkpoints).await;
    if let Err(e) = app
        .audit
        .append(crate::audit::record::Record::own("Stop", None, "OK"))
        .await
    {
        tracing::error!("the audit trail's stop record was not written: {e}");
    }
    tracing::info!("hkmsd stopped");
    result
}

/// Waits for every task, in order.
async fn futures_join<T>(
    tasks: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}

/// A write past the file size limit (RLIMIT_FSIZE) must fail like any other write (the
/// audit trail then refuses requests), not end hkmsd with SIGXFSZ: handling the signal
/// turns it into an `EFBIG` error.
fn file_size_signal() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("SIGXFSZ not handled ({e}): a full file size limit would end hkmsd");
            None
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
