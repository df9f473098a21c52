//! `tessera-storefront`: the catch-all route (`/...` in `spin.toml`), answering every path
//! the API routes do not match. Spin answers an unmatched path with its own empty 404;
//! routed here, an unknown path is the same problem+json 404 `not_found` (served by the
//! edge) under `spin up` as under the project's host, whatever the method. The storefront's
//! pages will be served from here later; more specific routes always win over `/...`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;
use tessera_edge_cache::spin::respond;

#[http_component]
fn handle(_request: IncomingRequest) -> Response {
    respond::no_route()
}
