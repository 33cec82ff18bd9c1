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
    /// Wakes the watchdog when a request starts or ends, so its deadline follows.
    changed: Notify,
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
            changed: Notify::new(),
        })
    }

    /// Marks a request as started; it ends when the guard (held by the response
    /// body) is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }

    /// Resolves when the connection has broken one of its two timeouts.
    pub async fn expired(&self, request_header: Duration, idle: Duration) -> Expired {
        loop {
            let now = Instant::now();
            let deadline = if self.requests.load(Ordering::Relaxed) == 0 {
                if now >= self.opened + request_header {
                    return Expired::NoRequest;
                }
                Some(self.opened + request_header)
            } else if self.in_flight.load(Ordering::Acquire) > 0 {
                None
            } else {
                let idle_since = self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
                if now >= idle_since + idle {
                    return Expired::Idle;
                }
                Some(idle_since + idle)
            };
            // Sleep until the deadline, or until a request starts or ends and the
            // deadline moves; with requests in flight there is no deadline at all.
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
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
        activity.changed.notify_one();
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
        assert!(ended.elapsed() >= Duration::from_secs(59), "{:?}", ended.elapsed());
    }
}
