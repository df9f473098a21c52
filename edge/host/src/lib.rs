//! `tessera-edge`: the local edge host. It runs the Spin application described by
//! `spin.toml` — the same WebAssembly components `spin up` runs — on wasmtime, for machines
//! without the Spin CLI: HTTP triggers routed by the manifest's routes, the Redis trigger
//! fed from a pub/sub subscription, an in-process key-value store per node, Spin variables
//! and `allowed_outbound_hosts`. Production hygiene follows `wasmtime serve`: pooling
//! allocator, epoch deadlines for runaway guests, memory limits, graceful shutdown, health
//! and Prometheus metrics.

pub mod config;
pub mod kv;
pub mod manifest;
pub mod metrics;
pub mod outbound;
pub mod redis_trigger;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod variables;

/// Host bindings generated from the project's `wit/` folder — the same WIT the components
/// are checked against.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "tessera:edge/redis-component",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "fermyon:spin/key-value.store": crate::kv::OpenStore,
        },
    });
}

pub use config::HostConfig;
pub use server::{EdgeHost, RunningEdge};
