//! How long each new connection took to set up (TCP, and TLS where used): a layer around the
//! HTTP client's connector that times every connect and keeps the times until a level takes
//! them. A request that waits for a new connection has that time in its TTFT; the level reports
//! it apart, so a low-rate level's TTFT can be read without it.

use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The setup times of connections opened and not yet taken. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct Setups(Arc<Mutex<Vec<Duration>>>);

impl Setups {
    /// The times since the last take.
    pub fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn push(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }
}

/// The layer: wraps the connector so that each connection that opens is timed into `Setups`.
#[derive(Debug, Clone)]
pub struct Timed(pub Setups);

impl<S> tower_layer::Layer<S> for Timed {
    type Service = TimedConnect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimedConnect {
            inner,
            setups: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TimedConnect<S> {
    inner: S,
    setups: Setups,
}

impl<S, R> tower_service::Service<R> for TimedConnect<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let start = Instant::now();
        let connecting = self.inner.call(req);
        let setups = self.setups.clone();
        Box::pin(async move {
            let conn = connecting.await;
            if conn.is_ok() {
                setups.push(start.elapsed());
            }
            conn
        })
    }
}
