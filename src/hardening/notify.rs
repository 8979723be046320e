//! systemd service notifications (`sd_notify`): readiness, watchdog keep-alives, stopping.
//!
//! The datagram socket is created before lock-down; afterwards only `sendto` is needed.
//! Without `$NOTIFY_SOCKET` (not started by systemd with `Type=notify`) nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`/`$WATCHDOG_PID` and opens the socket.
    pub fn from_env() -> Result<Notifier, String> {
        let socket = match std::env::var_os("NOTIFY_SOCKET") {
            None => None,
            Some(path) => {
                let addr = address(&path.to_string_lossy())?;
                let sock = UnixDatagram::unbound()
                    .map_err(|e| format!("cannot create the systemd notification socket: {e}"))?;
                Some((sock, addr))
            }
        };
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        Ok(Notifier { socket, watchdog })
    }

    /// Whether systemd listens.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// How often to send keep-alives (half the watchdog timeout), if a watchdog is set.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.socket.as_ref()?;
        self.watchdog.map(|d| d / 2)
    }

    /// Sends one notification, such as `READY=1`. Failures are logged, not fatal.
    pub fn notify(&self, state: &str) {
        if let Some((sock, addr)) = &self.socket {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                tracing::warn!("systemd notification {state:?} failed: {e}");
            }
        }
    }
}

fn address(path: &str) -> Result<std::os::unix::net::SocketAddr, String> {
    use std::os::linux::net::SocketAddrExt;
    let bad = |e: std::io::Error| format!("NOTIFY_SOCKET={path:?} is not usable: {e}");
    match path.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name).map_err(bad),
        None if path.starts_with('/') => {
            std::os::unix::net::SocketAddr::from_pathname(path).map_err(bad)
        }
        None => Err(format!(
            "NOTIFY_SOCKET={path:?} is neither a path nor an abstract name"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                address(path.to_str().unwrap()).unwrap(),
            )),
            watchdog: Some(Duration::from_secs(10)),
        };
        assert!(n.enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
        n.notify("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        assert!(address("relative").is_err());
        assert!(address("@abstract").is_ok());
    }
}
