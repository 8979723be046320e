//! The async runtime of hkmsd and hkms-gateway (`[runtime]` in either configuration).
//!
//! Both processes usually share one host, and every request crosses both of them. Each
//! therefore takes half of the CPUs it may run on (at least one) unless configured
//! otherwise: more async workers than that only add cross-thread wake-ups, which cost
//! more than they return when the cores are already busy with the other process, the HSM
//! library and TLS. HSM calls do not run on these workers but on tokio's blocking
//! threads, bounded by each member's `max_sessions`.

use serde::Deserialize;

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
    pub fn build(&self, thread_name: &str) -> Result<tokio::runtime::Runtime, String> {
        let workers = self.worker_threads();
        tracing::info!(workers, "async worker threads");
        tokio::runtime::Builder::new_multi_thread()
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
