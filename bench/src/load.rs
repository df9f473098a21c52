//! A closed-loop load generator: `clients` tasks, each with its own keep-alive HTTP/1.1
//! connection, send one hold at a time, as fast as answers come back, for a fixed
//! duration. Latencies go to an HDR histogram (µs).
//!
//! It speaks hyper's connection API directly (no pooling, proxy or URL machinery): the
//! generator shares the machine's cores with the ledger and PostgreSQL, so every cycle
//! it spends is taken from what is being measured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;

#[derive(Clone)]
pub struct Target {
    /// `host:port` of the ledger.
    pub authority: String,
    pub show_id: String,
    pub zone_id: String,
}

pub struct LoadResult {
    /// Every 201, warm-up included: what the database must hold afterwards.
    pub created_total: u64,
    /// 201s inside the measured window: the throughput figure.
    pub created: u64,
    pub shed: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl LoadResult {
    /// Adds another slice of the same strategy.
    pub fn absorb(&mut self, other: LoadResult) -> anyhow::Result<()> {
        self.latency_us
            .add(&other.latency_us)
            .context("merging histograms")?;
        self.created_total += other.created_total;
        self.created += other.created;
        self.shed += other.shed;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        Ok(())
    }

    pub fn holds_per_s(&self) -> f64 {
        self.created as f64 / self.elapsed.as_secs_f64()
    }
    pub fn p50_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.50) as f64 / 1000.0
    }
    pub fn p99_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// Highest latency the histogram tracks: 60 s in µs, 3 significant digits.
const LATENCY_MAX_US: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("3 sigfigs"))
}

async fn connect(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connect {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One hold request; returns the status.
async fn hold(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    client_no: usize,
    n: u64,
) -> anyhow::Result<u16> {
    let body = json!({"show_id": target.show_id, "zone_id": target.zone_id, "quantity": 1,
                      "customer_id": format!("bench-{client_no}-{n}")});
    let request = hyper::Request::post("/v1/holds")
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            "idempotency-key",
            format!("{client_no}-{n}-{}", uuid::Uuid::new_v4().simple()),
        )
        .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    // Read the whole body so the connection can carry the next request.
    response.into_body().collect().await?;
    Ok(status)
}

pub async fn run(
    target: Target,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<LoadResult> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let target = Arc::new(target);
    let mut tasks = Vec::with_capacity(clients);
    for client_no in 0..clients {
        let mut sender = connect(&target.authority).await?;
        let (target, measuring, stop) = (target.clone(), measuring.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency_us = histogram();
            let (mut created_total, mut created, mut shed, mut failed) = (0u64, 0u64, 0u64, 0u64);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                let status = hold(&mut sender, &target, client_no, n).await;
                let counted = measuring.load(Ordering::Relaxed);
                match status {
                    Ok(201) => {
                        created_total += 1;
                        if counted {
                            created += 1;
                            let _ = latency_us.record(started.elapsed().as_micros() as u64);
                        }
                    }
                    Ok(503) => shed += u64::from(counted),
                    Ok(_) => failed += 1,
                    Err(_) => {
                        failed += 1;
                        match connect(&target.authority).await {
                            Ok(fresh) => sender = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latency_us, created_total, created, shed, failed)
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);

    let mut result = LoadResult {
        created_total: 0,
        created: 0,
        shed: 0,
        failed: 0,
        elapsed,
        latency_us: histogram(),
    };
    for task in tasks {
        let (latency_us, created_total, created, shed, failed) = task.await?;
        result
            .latency_us
            .add(&latency_us)
            .context("merging histograms")?;
        result.created_total += created_total;
        result.created += created;
        result.shed += shed;
        result.failed += failed;
    }
    Ok(result)
}
