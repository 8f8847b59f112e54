//! The load generator: N keep-alive connections, each a task sending one request after another
//! until a deadline (or until a shared request budget is spent), recording each request's
//! latency and whether it got a 2xx.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::Target;
use crate::http1::Conn;

/// Builds the `n`-th request of connection `conn` (as bytes, see [`Target::raw_request`]);
/// answers the request's kind (an index into the workload's kinds, e.g. read / send) too.
pub type MakeRequest = Arc<dyn Fn(&Target, usize, u64, &mut Rng) -> (usize, Bytes) + Send + Sync>;

/// How much load.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub conns: usize,
    /// How long to send new requests (requests in flight at the deadline still finish).
    pub duration: Duration,
    /// At most this many requests in all (for seeding); None: as many as fit.
    pub budget: Option<u64>,
    /// The names of the kinds of request the workload makes (e.g. `["read", "send"]`).
    pub kinds: &'static [&'static str],
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub elapsed: Duration,
    /// The kinds of request, as in the plan.
    pub kinds: &'static [&'static str],
    /// Latency of every answered request, microseconds, sorted.
    pub latencies: Vec<u32>,
    /// 2xx answers per kind.
    pub ok: Vec<u64>,
    /// Non-2xx answers and failed requests per kind.
    pub errors: Vec<u64>,
    /// What the errors were ("HTTP 429", "connection reset" …) and how many of each.
    pub error_kinds: BTreeMap<String, u64>,
}

impl Outcome {
    pub fn total_ok(&self) -> u64 {
        self.ok.iter().sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Completed requests (2xx or not) per second.
    pub fn throughput(&self) -> f64 {
        (self.total_ok() + self.total_errors()) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the latencies, nearest rank, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let n = self.latencies.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies[rank - 1]) / 1000.0
    }

    /// Answered requests of one kind per second.
    pub fn kind_throughput(&self, kind: usize) -> f64 {
        (self.ok[kind] + self.errors[kind]) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies
            .last()
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    }
}

/// Runs the plan against the target.
pub async fn run(target: Arc<Target>, plan: Plan, make: MakeRequest) -> Outcome {
    let budget = plan.budget.map(|b| Arc::new(AtomicI64::new(b as i64)));
    // Every connection is opened before the clock starts.
    let barrier = Arc::new(tokio::sync::Barrier::new(plan.conns + 1));
    let mut tasks = Vec::with_capacity(plan.conns);
    for conn in 0..plan.conns {
        let target = target.clone();
        let make = make.clone();
        let barrier = barrier.clone();
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let sender = Conn::open(&target).await.ok();
            barrier.wait().await;
            connection(target, plan, make, conn, sender, budget).await
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut outcome = Outcome {
        kinds: plan.kinds,
        ok: vec![0; plan.kinds.len()],
        errors: vec![0; plan.kinds.len()],
        ..Outcome::default()
    };
    for task in tasks {
        match task.await {
            Ok(part) => {
                outcome.latencies.extend(part.latencies);
                for kind in 0..plan.kinds.len() {
                    outcome.ok[kind] += part.ok[kind];
                    outcome.errors[kind] += part.errors[kind];
                }
                for (kind, count) in part.error_kinds {
                    *outcome.error_kinds.entry(kind).or_default() += count;
                }
            }
            Err(err) => {
                outcome.errors[0] += 1;
                *outcome
                    .error_kinds
                    .entry(format!("task failed: {err}"))
                    .or_default() += 1;
            }
        }
    }
    outcome.elapsed = start.elapsed();
    outcome.latencies.sort_unstable();
    outcome
}

async fn connection(
    target: Arc<Target>,
    plan: Plan,
    make: MakeRequest,
    conn: usize,
    mut sender: Option<Conn>,
    budget: Option<Arc<AtomicI64>>,
) -> Outcome {
    let deadline = Instant::now() + plan.duration;
    let mut rng = Rng::new(conn as u64);
    let mut out = Outcome {
        kinds: plan.kinds,
        ok: vec![0; plan.kinds.len()],
        errors: vec![0; plan.kinds.len()],
        latencies: Vec::with_capacity(4096),
        ..Outcome::default()
    };
    let mut n = 0u64;
    while Instant::now() < deadline {
        if let Some(budget) = &budget {
            if budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
                break;
            }
        }
        let live = match &mut sender {
            Some(live) if live.is_open() => live,
            _ => match Conn::open(&target).await {
                Ok(fresh) => sender.insert(fresh),
                Err(err) => {
                    out.errors[0] += 1;
                    *out.error_kinds.entry(format!("{err:#}")).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let (kind, request) = make(&target, conn, n, &mut rng);
        n += 1;
        let started = Instant::now();
        match live.exchange(&request).await {
            Ok(status) => {
                let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                out.latencies.push(us);
                if status.is_success() {
                    out.ok[kind] += 1;
                } else {
                    out.errors[kind] += 1;
                    *out.error_kinds.entry(format!("HTTP {status}")).or_default() += 1;
                }
            }
            Err(err) => {
                out.errors[kind] += 1;
                *out.error_kinds.entry(format!("{err:#}")).or_default() += 1;
                sender = None;
            }
        }
    }
    out
}

/// xorshift64*: plenty for picking threads at random, and no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let outcome = Outcome {
            latencies: (1..=100).map(|ms| ms * 1000).collect(),
            ..Outcome::default()
        };
        assert_eq!(outcome.quantile_ms(0.5), 50.0);
        assert_eq!(outcome.quantile_ms(0.99), 99.0);
        assert_eq!(outcome.quantile_ms(1.0), 100.0);
        assert_eq!(outcome.max_ms(), 100.0);
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = Rng::new(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[rng.below(10)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
