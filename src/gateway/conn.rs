//! Connection guards: how long a client may take to send a request and to read its answer,
//! how many connections one source may hold, and the lingering close after an early answer.
//!
//! [`Guarded`] wraps a connection's stream and follows the request cycle that
//! [`ConnClock`] records:
//!
//! - *head*: the headers of a request must be complete within `header_timeout` of their
//!   first byte (for a new connection, of the end of the TLS handshake); a client that
//!   trickles them is disconnected;
//! - *busy*: the request is being handled; its body has its own deadline, enforced by the
//!   handler, which answers 408 when it runs out;
//! - *idle*: between requests, a kept-alive connection is closed after `idle_timeout`.
//!
//! A write that makes no progress for `send_timeout` (a client that does not read its answer)
//! fails too. After an answer given before the request body was read (413), the close is a
//! lingering one: the gateway ends its side (TLS close_notify, TCP FIN) and reads and
//! discards what the client still sends, up to a byte cap and a deadline, so that a client
//! which writes its whole body before reading receives the answer instead of a reset.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What per-source limits count against: an IPv4 address, or the /64 network of an IPv6
/// address (a single host commonly holds a whole /64). IPv4-mapped IPv6 addresses count as
/// IPv4.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match crate::access::network::canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Open connections per source, bounded by `per_source`.
#[derive(Debug)]
pub struct SourceConns {
    per_source: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of a source; released when dropped.
#[derive(Debug)]
pub struct SourceSlot {
    table: Arc<SourceConns>,
    source: IpAddr,
}

impl SourceConns {
    pub fn new(per_source: usize) -> Arc<SourceConns> {
        Arc::new(SourceConns {
            per_source,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `source`, unless it already holds `per_source`.
    pub fn try_open(self: &Arc<Self>, source: IpAddr) -> Option<SourceSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(source).or_insert(0);
        if *n >= self.per_source {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            table: self.clone(),
            source,
        })
    }

    /// Connections open from `source`.
    #[cfg(test)]
    fn open_from(&self, source: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&source).copied().unwrap_or(0)
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Receiving a request's headers, until the deadline.
    Head(Instant),
    /// Handling a request (the handler bounds its body).
    Busy,
    /// Between requests, until the deadline.
    Idle(Instant),
}

/// Where a connection is in its request cycle, shared by its stream and its handler.
#[derive(Debug)]
pub struct ConnClock {
    header_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<(Phase, bool)>,
}

impl ConnClock {
    /// A connection whose first request's headers are due within `header_timeout`.
    pub fn new(header_timeout: Duration, idle_timeout: Duration) -> Arc<ConnClock> {
        Arc::new(ConnClock {
            header_timeout,
            idle_timeout,
            state: Mutex::new((Phase::Head(Instant::now() + header_timeout), false)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut (Phase, bool)) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The request's headers arrived: its handler runs.
    pub fn request_started(&self) {
        self.with(|s| s.0 = Phase::Busy);
    }

    /// The handler answered: the connection waits for the next request.
    pub fn request_done(&self) {
        let until = Instant::now() + self.idle_timeout;
        self.with(|s| s.0 = Phase::Idle(until));
    }

    /// The answer was given before the request body was read: close with a lingering close.
    pub fn linger_on_close(&self) {
        self.with(|s| s.1 = true);
    }

    fn lingers(&self) -> bool {
        self.with(|s| s.1)
    }

    /// Bytes arrived: an idle connection starts receiving a request.
    fn bytes_received(&self) {
        let until = Instant::now() + self.header_timeout;
        self.with(|s| {
            if let Phase::Idle(_) = s.0 {
                s.0 = Phase::Head(until);
            }
        });
    }

    /// The deadline of the current read, and what runs out at it.
    fn read_deadline(&self) -> Option<(Instant, &'static str)> {
        self.with(|s| match s.0 {
            Phase::Head(at) => Some((at, "request headers not received in time")),
            Phase::Idle(at) => Some((at, "idle keep-alive connection closed")),
            Phase::Busy => None,
        })
    }
}

/// Bounds of the lingering close.
#[derive(Debug, Clone, Copy)]
pub struct Linger {
    pub max_bytes: u64,
    pub timeout: Duration,
}

/// Reads the transport under any TLS, for discarding what a client still sends.
pub trait RawRead {
    fn poll_raw_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>>;
}

impl RawRead for TcpStream {
    fn poll_raw_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self).poll_read(cx, buf)
    }
}

impl RawRead for tokio_openssl::SslStream<TcpStream> {
    fn poll_raw_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Only after the TLS session is closed on the gateway's side: the records are
        // discarded unread.
        Pin::new(self.get_mut()).poll_read(cx, buf)
    }
}

/// A client stream with the deadlines of [`ConnClock`] and a send timeout.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    clock: Arc<ConnClock>,
    send_timeout: Duration,
    linger: Linger,
    read_timer: Pin<Box<Sleep>>,
    read_armed: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_armed: bool,
    /// Bytes discarded so far, once the lingering close has begun.
    drained: Option<u64>,
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl<S> Guarded<S> {
    pub fn new(inner: S, clock: Arc<ConnClock>, send_timeout: Duration, linger: Linger) -> Self {
        let now = Instant::now();
        Guarded {
            inner,
            clock,
            send_timeout,
            linger,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            read_armed: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_armed: false,
            drained: None,
        }
    }

    /// A read found nothing: fails once `deadline` has passed, else waits for it too.
    fn read_waits<T>(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<io::Result<T>> {
        if self.read_armed != Some(deadline) {
            self.read_timer.as_mut().reset(deadline);
            self.read_armed = Some(deadline);
        }
        match self.read_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out("deadline"))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A write made no progress: fails once it has waited `send_timeout`.
    fn write_waits<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.write_armed {
            self.write_timer
                .as_mut()
                .reset(Instant::now() + self.send_timeout);
            self.write_armed = true;
        }
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out("the client did not read in time"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.write_waits(cx),
            ready => {
                self.write_armed = false;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.clock.bytes_received();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.clock.read_deadline() {
                None => Poll::Pending,
                Some((deadline, what)) => match this.read_waits::<()>(cx, deadline) {
                    Poll::Ready(_) => Poll::Ready(Err(timed_out(what))),
                    Poll::Pending => Poll::Pending,
                },
            },
        }
    }
}

impl<S: AsyncWrite + RawRead + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(r, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.wrote(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.drained.is_none() {
            let r = Pin::new(&mut this.inner).poll_shutdown(cx);
            match this.wrote(r, cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if !this.clock.lingers() {
                return Poll::Ready(Ok(()));
            }
            this.drained = Some(0);
            this.read_armed = None;
        }
        // Lingering close: discard what the client still sends until it closes its side, the
        // byte cap or the deadline; only then is the socket closed.
        let deadline = Instant::now() + this.linger.timeout;
        let deadline = this.read_armed.unwrap_or(deadline);
        let mut scratch = [0u8; 16 * 1024];
        loop {
            let mut rb = ReadBuf::new(&mut scratch);
            match this.inner.poll_raw_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    let total = this.drained.unwrap_or(0) + rb.filled().len() as u64;
                    this.drained = Some(total);
                    if total >= this.linger.max_bytes {
                        tracing::debug!(bytes = total, "lingering close: byte cap reached");
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match this.read_waits::<()>(cx, deadline) {
                        Poll::Ready(_) => {
                            tracing::debug!("lingering close: deadline reached");
                            Poll::Ready(Ok(()))
                        }
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_their_64_networks() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(c));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(source_of(mapped), "10.0.0.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_source_holds_at_most_its_share_of_connections() {
        let t = SourceConns::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = t.try_open(a).unwrap();
        let _s2 = t.try_open(a).unwrap();
        assert!(t.try_open(a).is_none(), "third connection of one source");
        assert!(t.try_open(b).is_some(), "another source is not affected");
        drop(s1);
        assert_eq!(t.open_from(a), 1);
        assert!(
            t.try_open(a).is_some(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn idle_and_trickled_headers_run_out() {
        let clock = ConnClock::new(Duration::from_secs(5), Duration::from_secs(30));
        assert!(clock.read_deadline().is_some(), "first request is due");
        clock.request_started();
        assert!(
            clock.read_deadline().is_none(),
            "the handler bounds the body"
        );
        clock.request_done();
        let (idle, what) = clock.read_deadline().unwrap();
        assert!(what.contains("idle"));
        clock.bytes_received();
        let (head, what) = clock.read_deadline().unwrap();
        assert!(what.contains("headers"));
        assert!(head < idle, "headers are due sooner than the idle timeout");
    }
}
