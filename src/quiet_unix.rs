//! A Unix stream socket that the event loop watches for reading only: the hop between
//! hkms-gateway and hkmsd.
//!
//! Linux wakes a Unix stream socket's writability waiters every time its peer reads from
//! it (`unix_write_space`), whether or not anything ever waited for room. Tokio watches its
//! sockets for both directions, so each message the other side reads wakes this side's
//! sleeping thread for nothing: one extra sleep and wake-up per request on each side of
//! the relay. This stream is registered for readability only and writes directly; only a
//! write that finds the socket full registers a duplicate descriptor for writability, until
//! a write goes through again.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// See the module documentation.
#[derive(Debug)]
pub struct QuietUnixStream {
    stream: AsyncFd<StdUnixStream>,
    /// A duplicate of the socket watched for writability, while a write waits for room.
    write_wait: Option<AsyncFd<OwnedFd>>,
    connect_info: tonic::transport::server::UdsConnectInfo,
}

impl QuietUnixStream {
    /// Takes over a connected tokio stream (its peer's credentials are kept for
    /// [`tonic::transport::server::Connected`]).
    pub fn new(stream: tokio::net::UnixStream) -> io::Result<QuietUnixStream> {
        let connect_info = tonic::transport::server::UdsConnectInfo {
            peer_addr: stream.peer_addr().ok().map(std::sync::Arc::new),
            peer_cred: stream.peer_cred().ok(),
        };
        let std = stream.into_std()?;
        std.set_nonblocking(true)?;
        Ok(QuietUnixStream {
            stream: watch(std, Interest::READABLE)?,
            write_wait: None,
            connect_info,
        })
    }

    /// Connects to the socket at `path`.
    pub async fn connect(path: impl AsRef<std::path::Path>) -> io::Result<QuietUnixStream> {
        QuietUnixStream::new(tokio::net::UnixStream::connect(path).await?)
    }

    /// Runs `write` until it goes through, waiting for room when the socket is full.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(&StdUnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match write(self.stream.get_ref()) {
                Ok(n) => {
                    self.write_wait = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if self.write_wait.is_none() {
                // Registered now: if room appeared since the write failed, epoll reports
                // it at once, so no wake-up is lost.
                let dup = self.stream.get_ref().as_fd().try_clone_to_owned()?;
                self.write_wait = Some(watch(dup, Interest::WRITABLE)?);
            }
            let wait = self.write_wait.as_ref().expect("set above");
            let mut guard = ready!(wait.poll_write_ready(cx))?;
            guard.clear_ready();
        }
    }
}

/// Registers `fd` with the event loop for `interest`.
///
/// Tokio deprecates the safe constructor because an arbitrary `AsRawFd` type could close or
/// swap its descriptor while registered. The two types used here own theirs: a
/// `std::os::unix::net::UnixStream` and an `OwnedFd` keep the same open descriptor until
/// they are dropped, which happens only with the `AsyncFd` (it deregisters first).
#[allow(deprecated)]
fn watch<T: std::os::fd::AsRawFd>(fd: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    AsyncFd::with_interest(fd, interest)
}

impl AsyncRead for QuietUnixStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.stream.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|s| s.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for QuietUnixStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |s| (&*s).write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |s| (&*s).write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

impl tonic::transport::server::Connected for QuietUnixStream {
    type ConnectInfo = tonic::transport::server::UdsConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.connect_info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic::transport::server::Connected;

    /// Both directions, and a writer that fills the socket and must wait for the reader.
    #[tokio::test]
    async fn carries_bytes_both_ways_and_waits_for_room() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut a = QuietUnixStream::new(a).unwrap();
        let mut b = QuietUnixStream::new(b).unwrap();
        a.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        assert_eq!(
            a.connect_info().peer_cred.map(|c| c.uid()),
            Some(nix::unistd::getuid().as_raw())
        );

        // Far more than a socket buffer holds: the writer blocks until the reader drains.
        let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = big.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&big).await.unwrap();
            a.shutdown().await.unwrap();
            a
        });
        let mut received = Vec::new();
        b.read_to_end(&mut received).await.unwrap();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected);
        writer.await.unwrap();
    }
}
