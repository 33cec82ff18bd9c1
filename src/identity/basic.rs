//! HTTP Basic against an htpasswd file: the verification cache, and the pool that runs
//! password hashes off the async workers so a flood of guesses cannot freeze the proxy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use super::htpasswd::Htpasswd;

/// The compiled `[identity.basic]`.
#[derive(Debug, Clone)]
pub struct BasicConfig {
    /// The parsed htpasswd file.
    pub htpasswd: Htpasswd,
    /// Its path, for messages.
    pub file: PathBuf,
    /// `[identity.basic.roles]`.
    pub roles: HashMap<String, Vec<String>>,
}

/// The pool is full: the request is answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Runs blocking hash verifications with at most one per core at a time and a bounded
/// queue behind them. A full queue is refused rather than waited on.
#[derive(Debug)]
pub struct HashPool {
    running: Semaphore,
    in_pool: AtomicUsize,
    capacity: usize,
}

/// Waiting verifications allowed per core.
const QUEUE_PER_CORE: usize = 32;

impl Default for HashPool {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        HashPool::new(cores, cores * QUEUE_PER_CORE)
    }
}

impl HashPool {
    /// A pool running `parallel` hashes at once with `queue` more waiting.
    pub fn new(parallel: usize, queue: usize) -> Self {
        HashPool {
            running: Semaphore::new(parallel.max(1)),
            in_pool: AtomicUsize::new(0),
            capacity: parallel.max(1) + queue,
        }
    }

    /// Runs `verify` on the blocking thread pool when a slot is free.
    pub async fn run(&self, verify: impl FnOnce() -> bool + Send + 'static) -> Result<bool, Busy> {
        if self.in_pool.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_pool.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _leave = Leave(&self.in_pool);
        let _permit = self.running.acquire().await.map_err(|_| Busy)?;
        tokio::task::spawn_blocking(verify).await.map_err(|_| Busy)
    }
}

/// Decrements the pool count however the verification ends (including cancellation).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn verifications_run_and_return_their_result() {
        let pool = HashPool::new(1, 1);
        assert_eq!(pool.run(|| true).await, Ok(true));
        assert_eq!(pool.run(|| false).await, Ok(false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_pool_answers_busy() {
        let pool = Arc::new(HashPool::new(1, 1));
        let slow = || {
            std::thread::sleep(Duration::from_millis(300));
            true
        };
        let first = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.run(slow).await }
        });
        let second = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.run(slow).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.run(|| true).await, Err(Busy));
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(second.await.unwrap(), Ok(true));
        assert_eq!(pool.run(|| true).await, Ok(true), "the pool frees up again");
    }
}
