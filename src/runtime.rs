//! The async runtime of hkmsd and hkms-gateway (`[runtime]` in either configuration).
//!
//! Both processes usually share one host, and every request crosses both of them. Each
//! therefore takes half of the CPUs it may run on (at least one) unless configured
//! otherwise: more async workers than that only add cross-thread wake-ups, which cost
//! more than they return when the cores are already busy with the other process, the HSM
//! library and TLS. HSM calls run on tokio's blocking threads, bounded by each member's
//! `max_sessions`, except the fast calls of in-process software tokens (`[calls] inline`
//! in the member's profile), which run on these workers.
//!
//! hkmsd's workers look at tasks woken from other threads before each task they run
//! ([`Wakes::First`]): those are requests whose HSM calls returned on a blocking thread, so
//! they are finished before new requests are started. (Measured when audit records were
//! still made durable by a thread of their own: through the gateway at concurrency 16, a
//! request woken from that thread waited 0.3 to 0.6 ms to run again with tokio's default,
//! and 0.1 to 0.15 ms this way. The trail now commits on the workers themselves.)

use serde::Deserialize;

/// When workers run tasks woken from threads outside the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakes {
    /// Before each task of their own queues (hkmsd: HSM calls on blocking threads wake
    /// requests that are ready to be answered).
    First,
    /// Tokio's default: now and then, and whenever their own queues are empty.
    Default,
}

/// `[runtime]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Async worker threads; 0 (the default) takes half of the available CPUs, at least
    /// one.
    #[serde(default)]
    pub worker_threads: usize,
}

impl RuntimeConfig {
    /// The number of async worker threads to start.
    pub fn worker_threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cpus / 2).max(1)
    }

    /// Builds the serving runtime; its threads are named `thread_name`.
    pub fn build(
        &self,
        thread_name: &str,
        wakes: Wakes,
    ) -> Result<tokio::runtime::Runtime, String> {
        let workers = self.worker_threads();
        tracing::info!(workers, "async worker threads");
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if wakes == Wakes::First {
            builder.global_queue_interval(1);
        }
        builder
            .worker_threads(workers)
            .enable_all()
            .thread_name(thread_name)
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_count_wins_and_the_default_is_half_the_cpus() {
        let set = RuntimeConfig { worker_threads: 3 };
        assert_eq!(set.worker_threads(), 3);
        let cpus = std::thread::available_parallelism().unwrap().get();
        let auto = RuntimeConfig::default().worker_threads();
        assert_eq!(auto, (cpus / 2).max(1));
        assert!(auto >= 1);
    }

    #[test]
    fn unknown_settings_are_refused() {
        let e = toml::from_str::<RuntimeConfig>("workers = 2").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
