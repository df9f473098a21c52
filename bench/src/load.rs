//! A closed-loop load generator: `clients` tasks each send one hold at a time, as fast as
//! answers come back, for a fixed duration. Latencies go to an HDR histogram (µs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

pub struct Target {
    pub holds_url: String,
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

pub async fn run(
    client: &reqwest::Client,
    target: &Target,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> LoadResult {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let target = Arc::new((
        target.holds_url.clone(),
        target.show_id.clone(),
        target.zone_id.clone(),
    ));
    let mut tasks = Vec::with_capacity(clients);
    for client_no in 0..clients {
        let (client, target, measuring, stop) = (
            client.clone(),
            target.clone(),
            measuring.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("valid histogram bounds");
            let (mut created_total, mut created, mut shed, mut failed) = (0u64, 0u64, 0u64, 0u64);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"show_id": target.1, "zone_id": target.2, "quantity": 1,
                                  "customer_id": format!("bench-{client_no}-{n}")});
                let started = Instant::now();
                let status = client
                    .post(&target.0)
                    .header(
                        "Idempotency-Key",
                        format!("{client_no}-{n}-{}", uuid::Uuid::new_v4().simple()),
                    )
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                let counted = measuring.load(Ordering::Relaxed);
                match status {
                    Ok(201) => {
                        created_total += 1;
                        if counted {
                            created += 1;
                            let _ = histogram.record(started.elapsed().as_micros() as u64);
                        }
                    }
                    Ok(503) => shed += u64::from(counted),
                    _ => failed += 1,
                }
            }
            (histogram, created_total, created, shed, failed)
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);

    let mut latency_us =
        Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds");
    let (mut created_all, mut created, mut shed, mut failed) = (0, 0, 0, 0);
    for task in tasks {
        if let Ok((histogram, c_all, c, s, f)) = task.await {
            let _ = latency_us.add(&histogram);
            created_all += c_all;
            created += c;
            shed += s;
            failed += f;
        }
    }
    LoadResult {
        created_total: created_all,
        created,
        shed,
        failed,
        elapsed,
        latency_us,
    }
}
