//! Per-connection activity, for the watchdog that enforces what hyper does not: a
//! first request within `request_header` (hyper-util's protocol sniffing and HTTP/2
//! have no header timer) and the `idle` timeout (HTTP/2 has none).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Counters shared by a connection's requests and its watchdog.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the connection last became idle.
    idle_since_ms: AtomicU64,
    /// Wakes the watchdog when the first request arrives, which moves its deadline
    /// from `request_header` to `idle`. Later requests only update the counters: the
    /// watchdog re-checks them when it wakes, so no request pays for a wake-up.
    first_request: Notify,
}

/// Why the watchdog fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No request arrived within `request_header` of the accept.
    NoRequest,
    /// No request was in flight for `idle`.
    Idle,
}

impl Activity {
    /// Activity of a connection accepted at `opened`.
    pub fn new(opened: Instant) -> Arc<Self> {
        Arc::new(Activity {
            opened,
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            first_request: Notify::new(),
        })
    }

    /// Marks a request as started; it ends when the guard (held by the response
    /// body) is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        if self.requests.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first_request.notify_one();
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Resolves when the connection has broken one of its two timeouts. Before the
    /// first request the deadline is `request_header` after the accept; after it, the
    /// connection is checked every `idle` and closed once it has been idle that long,
    /// so an idle connection lives between `idle` and twice `idle`.
    pub async fn expired(&self, request_header: Duration, idle: Duration) -> Expired {
        loop {
            let now = Instant::now();
            if self.requests.load(Ordering::Relaxed) == 0 {
                let deadline = self.opened + request_header;
                if now >= deadline {
                    return Expired::NoRequest;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = self.first_request.notified() => {}
                }
                continue;
            }
            let deadline = if self.in_flight.load(Ordering::Acquire) > 0 {
                now + idle
            } else {
                let idle_since = self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
                if now >= idle_since + idle {
                    return Expired::Idle;
                }
                idle_since + idle
            };
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request in flight; dropping it marks the connection idle when it was the last.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let millis = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(millis, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it is sent.
#[derive(Debug)]
pub struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    /// Ties `body` to a request's in-flight guard.
    pub fn new(body: B, in_flight: InFlight) -> Self {
        Tracked {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_request_expires_after_request_header() {
        let activity = Activity::new(Instant::now());
        let started = Instant::now();
        let expired = activity.expired(Duration::from_secs(10), Duration::from_secs(60)).await;
        assert_eq!(expired, Expired::NoRequest);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_arriving_late_moves_the_deadline_to_idle() {
        let activity = Activity::new(Instant::now());
        let watcher = Arc::clone(&activity);
        let watchdog =
            tokio::spawn(async move { watcher.expired(Duration::from_secs(10), Duration::from_secs(1)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(activity.begin());
        let ended = Instant::now();
        assert_eq!(watchdog.await.unwrap(), Expired::Idle);
        assert!(
            ended.elapsed() >= Duration::from_secs(1) && ended.elapsed() < Duration::from_secs(2),
            "{:?}",
            ended.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let activity = Activity::new(Instant::now());
        let guard = activity.begin();
        tokio::time::sleep(Duration::from_secs(100)).await;
        drop(guard);
        let ended = Instant::now();
        let expired = activity.expired(Duration::from_secs(10), Duration::from_secs(60)).await;
        assert_eq!(expired, Expired::Idle);
        assert_eq!(ended.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_request_keeps_the_connection_until_idle_after_it() {
        let activity = Activity::new(Instant::now());
        let guard = activity.begin();
        let watcher = Arc::clone(&activity);
        let watchdog =
            tokio::spawn(async move { watcher.expired(Duration::from_secs(10), Duration::from_secs(60)).await });
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert!(!watchdog.is_finished(), "a request in flight is not idleness");
        drop(guard);
        let ended = Instant::now();
        assert_eq!(watchdog.await.unwrap(), Expired::Idle);
        let idle_for = ended.elapsed();
        assert!(
            idle_for >= Duration::from_secs(60) && idle_for <= Duration::from_secs(120),
            "{idle_for:?}"
        );
    }
}
