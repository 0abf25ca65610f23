//! (being written)

use crate::protocol::serve::{Endpoint, ServerTotals};

/// The server's token counters now, from its `/metrics` (`None` when it publishes none).
pub async fn totals(_client: &super::client::Client, _ep: &Endpoint) -> Option<ServerTotals> {
    None
}
