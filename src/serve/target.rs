//! A server over HTTP as a load target: each request streamed by the shared [`Client`], and the
//! server's token counters read from its `/metrics` when it publishes them.

use super::client::{Cancel, Client};
use super::load::Target;
use crate::protocol::serve::{Endpoint, Outcome, Request, ServerTotals};
use futures::future::BoxFuture;
use std::time::Instant;

/// One endpoint, measured through a shared client; `cancel` stops every request it sends.
pub struct Http {
    pub client: Client,
    pub endpoint: Endpoint,
    pub cancel: Cancel,
}

impl Target for Http {
    fn name(&self) -> String {
        self.endpoint.url.clone()
    }

    fn send(&self, req: Request, origin: Instant) -> BoxFuture<'static, Outcome> {
        let (client, ep, cancel) = (
            self.client.clone(),
            self.endpoint.clone(),
            self.cancel.clone(),
        );
        Box::pin(async move {
            client
                .stream(&ep, &req, origin, Some(&cancel), |_| {})
                .await
        })
    }

    fn totals(&self) -> BoxFuture<'static, Option<ServerTotals>> {
        let (client, ep) = (self.client.clone(), self.endpoint.clone());
        Box::pin(async move { super::scrape::totals(&client, &ep).await })
    }
}
