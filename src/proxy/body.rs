//! Bodies in both directions, streamed frame by frame, never buffered whole.
//!
//! `RequestBody` wraps the client's body on its way upstream and enforces the two
//! limits that can only be checked while streaming: the size limit for bodies without
//! (or beyond) a Content-Length, and the gap between body bytes. `ResponseBody` is
//! either the upstream's body passed through or a response portcullis wrote itself.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a request body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More bytes than `max_request_body_bytes`.
    #[error("the request body exceeds the configured limit")]
    TooLarge,
    /// No body bytes for `timeouts.request_body`.
    #[error("no request body bytes within the configured timeout")]
    Stalled,
    /// The client's connection failed.
    #[error("reading the request body failed: {0}")]
    Client(#[from] hyper::Error),
}

/// The client's body on its way to the upstream.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    remaining: Option<u64>,
    stall_timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
}

impl RequestBody {
    /// Wraps a client body with an optional byte limit and a stall timeout.
    pub fn new(inner: Incoming, limit: Option<u64>, stall_timeout: Duration) -> Self {
        RequestBody {
            inner,
            remaining: limit,
            stall_timeout,
            stall: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Some(remaining) = this.remaining.as_mut()
                {
                    let length = data.len() as u64;
                    if length > *remaining {
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    *remaining -= length;
                }
                // Progress: the stall clock starts again at the next wait.
                this.stall = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(BodyError::Client(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.stall_timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Stalled))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body: the upstream's, streamed through, or one portcullis wrote.
#[derive(Debug)]
pub enum ResponseBody {
    /// Passed through from the upstream.
    Upstream(Incoming),
    /// Written by portcullis; sent in one frame.
    Local(Option<Bytes>),
}

impl ResponseBody {
    /// A complete body held in memory.
    pub fn local(bytes: Bytes) -> Self {
        ResponseBody::Local(Some(bytes))
    }

    /// No body.
    pub fn empty() -> Self {
        ResponseBody::Local(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Upstream(incoming) => Pin::new(incoming).poll_frame(cx),
            ResponseBody::Local(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream(incoming) => incoming.is_end_stream(),
            ResponseBody::Local(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream(incoming) => incoming.size_hint(),
            ResponseBody::Local(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
