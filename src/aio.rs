//! Linux native asynchronous I/O (`io_submit`), for the audit trail's durable appends.
//!
//! A file opened with `O_DIRECT | O_DSYNC` is written from an aligned buffer; the kernel
//! completes the write once the data is on stable storage (with the device cache flushed)
//! and signals an eventfd that hkmsd's runtime watches. The runtime worker that submits
//! the write goes on serving requests meanwhile, instead of waiting in `fdatasync`, and no
//! thread of hkmsd's own is woken for it.
//!
//! This is the one place outside the PKCS#11 bindings with `unsafe` code: the kernel's
//! `iocb` and `io_event` layouts and the four system calls. Soundness rests on one rule,
//! kept by [`Written`]: the buffer a write reads from lives, unmoved, until the kernel has
//! reported the write complete; a `Written` dropped before that blocks until it has.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

#[cfg(not(all(target_os = "linux", target_endian = "little")))]
compile_error!("the iocb layout below is Linux's on little-endian machines");

/// Alignment of direct writes: offsets, lengths and buffer addresses (a page, which
/// covers every logical block size).
pub const ALIGN: usize = 4096;

/// `struct iocb` (linux/aio_abi.h), little-endian.
#[repr(C)]
#[derive(Default)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: i32,
    opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

/// `struct io_event` (linux/aio_abi.h).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

const IOCB_CMD_PWRITE: u16 = 1;
const IOCB_FLAG_RESFD: u32 = 1;

/// An AIO context with one write in flight at most, and the eventfd its completions
/// signal (registered with the runtime).
#[derive(Debug)]
pub struct Context {
    id: libc::c_ulong,
    done: AsyncFd<OwnedFd>,
    /// A write is in flight (one at a time: a completion reaped is always its own).
    busy: AtomicBool,
    /// The runtime whose reactor watches `done`.
    runtime: tokio::runtime::Id,
}

impl Context {
    /// A context for one write at a time. Must be called on the runtime.
    pub fn new() -> io::Result<Arc<Context>> {
        let mut id: libc::c_ulong = 0;
        // SAFETY: io_setup writes the new context's id into `id`, which outlives the call.
        let rc = unsafe { libc::syscall(libc::SYS_io_setup, 1 as libc::c_long, &mut id) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let destroy = |id: libc::c_ulong| {
            // SAFETY: `id` came from io_setup and nothing has been submitted to it.
            unsafe { libc::syscall(libc::SYS_io_destroy, id) };
        };
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            destroy(id);
            return Err(e);
        }
        // SAFETY: `fd` is a valid descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            destroy(id);
            return Err(io::Error::other("not on the runtime"));
        };
        // SAFETY: an OwnedFd's descriptor stays open and the same until it is dropped, with
        // the AsyncFd that owns it.
        let done = match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            Ok(d) => d,
            Err(e) => {
                destroy(id);
                return Err(e.into());
            }
        };
        Ok(Arc::new(Context {
            id,
            done,
            busy: AtomicBool::new(false),
            runtime: runtime.id(),
        }))
    }

    /// Whether completions can be awaited on the current runtime (the context belongs to
    /// the runtime it was made on).
    pub fn on_current_runtime(&self) -> bool {
        tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == self.runtime)
    }

    /// Submits a write of `buf` (aligned to [`ALIGN`] in address and length) at `offset`
    /// (aligned) of `file`, which must have been opened with `O_DIRECT`.
    pub fn write(self: &Arc<Self>, file: &File, buf: Aligned, offset: u64) -> io::Result<Written> {
        if self.busy.swap(true, Ordering::Acquire) {
            return Err(io::Error::other("a write is in flight already"));
        }
        let bytes = buf.bytes();
        let expected = bytes.len() as u64;
        let mut iocb = Iocb {
            opcode: IOCB_CMD_PWRITE,
            fildes: file.as_raw_fd() as u32,
            buf: bytes.as_ptr() as u64,
            nbytes: bytes.len() as u64,
            offset: offset as i64,
            flags: IOCB_FLAG_RESFD,
            resfd: self.done.get_ref().as_raw_fd() as u32,
            ..Iocb::default()
        };
        let mut list = [&mut iocb as *mut Iocb];
        // SAFETY: the iocb and the list are read during the call only; the buffer they
        // name stays alive and unmoved in the returned `Written` until the write completes.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_io_submit,
                self.id,
                1 as libc::c_long,
                list.as_mut_ptr(),
            )
        };
        if rc != 1 {
            self.busy.store(false, Ordering::Release);
            return Err(if rc < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::other("io_submit took no write")
            });
        }
        Ok(Written {
            context: self.clone(),
            buf: Some(buf),
            expected,
        })
    }

    /// Takes one completion, waiting for it if `wait`; `None` if there is none yet.
    fn reap(&self, wait: bool) -> io::Result<Option<IoEvent>> {
        let mut event = IoEvent::default();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let timeout: *const libc::timespec = if wait { std::ptr::null() } else { &zero };
        loop {
            // SAFETY: `event` has room for the one event asked for; `timeout` is null or
            // points to `zero`, which outlives the call.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_io_getevents,
                    self.id,
                    if wait { 1 } else { 0 } as libc::c_long,
                    1 as libc::c_long,
                    &mut event as *mut IoEvent,
                    timeout,
                )
            };
            match rc {
                1 => return Ok(Some(event)),
                0 => return Ok(None),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `id` came from io_setup; every write submitted to it has been reaped
        // (each `Written` holds the context until then).
        unsafe { libc::syscall(libc::SYS_io_destroy, self.id) };
    }
}

/// A buffer whose bytes start on an [`ALIGN`] boundary and whose length is a multiple of it.
#[derive(Debug)]
pub struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `content` followed by zeros up to the next multiple of [`ALIGN`].
    pub fn padded(content: &[&[u8]]) -> Aligned {
        let total: usize = content.iter().map(|c| c.len()).sum();
        let len = total.div_ceil(ALIGN).max(1) * ALIGN;
        let mut storage = vec![0u8; len + ALIGN];
        let start = (ALIGN - storage.as_ptr() as usize % ALIGN) % ALIGN;
        let mut at = start;
        for c in content {
            storage[at..at + c.len()].copy_from_slice(c);
            at += c.len();
        }
        Aligned {
            storage,
            start,
            len,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

/// A write in flight. [`Written::wait`] resolves when the kernel has completed it.
#[derive(Debug)]
pub struct Written {
    context: Arc<Context>,
    /// The bytes being written; `None` once the write has completed.
    buf: Option<Aligned>,
    expected: u64,
}

impl Written {
    /// Waits on the runtime for the write to complete; an error if it failed or was short.
    pub async fn wait(mut self) -> io::Result<()> {
        loop {
            if let Some(event) = self.context.reap(false)? {
                return self.completed(event);
            }
            let mut ready = self.context.done.readable().await?;
            let mut count = [0u8; 8];
            // Clears the eventfd's count; the completion itself is read by `reap`.
            match nix::unistd::read(self.context.done.get_ref(), &mut count) {
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn completed(&mut self, event: IoEvent) -> io::Result<()> {
        self.buf = None;
        self.context.busy.store(false, Ordering::Release);
        match event.res {
            n if n < 0 => Err(io::Error::from_raw_os_error(-n as i32)),
            n if n as u64 != self.expected => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {n} of {} bytes", self.expected),
            )),
            _ => Ok(()),
        }
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if self.buf.is_some() {
            // Dropped before completion (its task cancelled): the buffer must outlive the
            // write, so wait for it here.
            if self.context.reap(true).is_ok() {
                self.context.busy.store(false, Ordering::Release);
            } else {
                // The write's fate is unknown: keep its buffer for good rather than free
                // memory the kernel may still read.
                std::mem::forget(self.buf.take());
            }
        }
    }
}
