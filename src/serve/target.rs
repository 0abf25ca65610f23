//! A server over HTTP as a load target: each request streamed by the shared [`Client`], and the
//! server's token counters read from its `/metrics` when it publishes them.

use super::client::{Cancel, Client};
use super::load::Target;
use super::scrape::{metrics_url, scrape_once, ScrapeConfig};
use crate::protocol::scraped::ServerEngine;
use crate::protocol::serve::{Endpoint, Outcome, Request, ServerTotals};
use futures::future::BoxFuture;
use std::time::Instant;

/// One endpoint, measured through a shared client; `cancel` stops every request it sends.
pub struct Http {
    pub client: Client,
    /// For the metrics (the streaming client keeps its pool to itself).
    pub metrics: reqwest::Client,
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

    fn connections(&self) -> Option<Vec<std::time::Duration>> {
        Some(self.client.take_setups())
    }

    fn totals(&self) -> BoxFuture<'static, Option<ServerTotals>> {
        let (http, ep) = (self.metrics.clone(), self.endpoint.clone());
        Box::pin(async move {
            let config = ScrapeConfig::for_endpoint(&ep);
            let url = metrics_url(&config.url).ok()?;
            let s = scrape_once(&http, &url, &config).await.ok()?;
            if s.engine == ServerEngine::Unknown {
                return None;
            }
            Some(ServerTotals {
                engine: s.engine,
                prompt_tokens: s.prompt_tokens,
                generation_tokens: s.generation_tokens,
                prefix_hits: s.prefix_hits,
                prefix_queries: s.prefix_queries,
            })
        })
    }
}
