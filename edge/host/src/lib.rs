//! `tessera-edge`: the local edge host. It runs the Spin application described by
//! `spin.toml` — the same WebAssembly components `spin up` runs — on wasmtime, for machines
//! without the Spin CLI: HTTP triggers routed by the manifest's routes, the Redis trigger
//! fed from a pub/sub subscription, an in-process key-value store per node, Spin variables
//! and `allowed_outbound_hosts`. Production hygiene follows `wasmtime serve`: pooling
//! allocator, epoch deadlines for runaway guests, memory limits, graceful shutdown, health
//! and Prometheus metrics (on an operations listener of their own).
//!
//! Layout: [`server`] accepts and routes, [`guest`] runs one request through an instance,
//! [`body`] limits request bodies and coalesces small responses, [`respond`] writes the
//! host's own answers, [`ops`] serves `/metrics` and `/health`, [`runtime`] is the wasmtime
//! side, [`redis_trigger`], [`kv`] (with [`wasi_keyvalue`]), [`variables`] and [`outbound`]
//! the Spin features.

pub mod body;
pub mod config;
mod guest;
pub mod kv;
pub mod manifest;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod redis_trigger;
pub mod respond;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod variables;
pub mod wasi_keyvalue;

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
            "wasi:keyvalue/store.bucket": crate::wasi_keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": crate::wasi_keyvalue::Cas,
        },
    });
}

pub use config::HostConfig;
pub use server::{EdgeHost, RunningEdge};
