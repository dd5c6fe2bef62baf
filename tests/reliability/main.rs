//! The reliability suite (issue 6): upstream faults, crashes, storage faults, hostile clients and a
//! load soak, each against real modstash servers over loopback, with the tallies printed at the end.
//!
//! A plain binary (`harness = false`) so scenarios run one after another with the whole machine,
//! and one summary is printed after all of them. `cargo test --release --test reliability` runs
//! the short mode CI uses; `MODSTASH_RELIABILITY=long` runs the long one (a 10-minute soak, more
//! kill cycles). Arguments filter scenarios by name substring, e.g.
//! `cargo test --release --test reliability -- faults`.
//!
//! A scenario that needs a component this machine lacks (the go command, moto, root for a tmpfs)
//! is skipped, or fails under `MODSTASH_E2E=require`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../services/mod.rs"]
mod services;
#[path = "../it/support/mod.rs"]
#[allow(dead_code)]
mod support;

mod crash;
mod faults;
mod fuzz;
mod hostile;
mod idle;
mod inspect;
mod report;
mod soak;
mod storage_faults;
mod tree;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use report::Report;

/// How long and how hard the suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// CI's budget: every scenario, scaled down in duration.
    Short,
    /// `MODSTASH_RELIABILITY=long`: the full durations the issue names.
    Long,
}

impl Mode {
    fn from_env() -> Mode {
        match std::env::var("MODSTASH_RELIABILITY").as_deref() {
            Ok("long") => Mode::Long,
            _ => Mode::Short,
        }
    }
}

/// What a scenario ends with, besides its tallies.
#[derive(Debug)]
pub enum Outcome {
    /// It ran; its tallies say how it went.
    Ran,
    /// A component is missing; the reason says which.
    Skipped(String),
}

type ScenarioFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// A named scenario: panics (failed `assert!`s) are failures of that scenario only.
pub struct Scenario {
    /// Name, for filtering and the summary.
    pub name: &'static str,
    /// The body.
    pub run: for<'a> fn(&'a Report, Mode) -> ScenarioFuture<'a>,
}

/// Every scenario, in the order they run.
fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "upstream_faults",
            run: faults::upstream_faults,
        },
        Scenario {
            name: "hostile_inputs",
            run: hostile::hostile_inputs,
        },
        Scenario {
            name: "idle_connections",
            run: idle::idle_connections,
        },
        Scenario {
            name: "fuzz_budget",
            run: fuzz::fuzz_budget,
        },
        Scenario {
            name: "crash_loop",
            run: |r, m| Box::pin(crash::crash_loop(r, m)),
        },
        Scenario {
            name: "storage_faults",
            run: |r, m| Box::pin(storage_faults::storage_faults(r, m)),
        },
        Scenario {
            name: "soak",
            run: |r, m| Box::pin(soak::soak(r, m)),
        },
    ]
}

/// The seed of every random choice (kill points, load mix): `MODSTASH_RELIABILITY_SEED`, or a
/// fixed default so a failing run can be repeated.
pub fn seed() -> u64 {
    std::env::var("MODSTASH_RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

fn require_components() -> bool {
    std::env::var("MODSTASH_E2E").as_deref() == Ok("require")
}

fn main() {
    let mode = Mode::from_env();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = Report::default();
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for scenario in scenarios() {
        if !filters.is_empty() && !filters.iter().any(|f| scenario.name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        eprintln!("\n== scenario {} ({mode:?})", scenario.name);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on((scenario.run)(&report, mode))
        }));
        let took = started.elapsed();
        match outcome {
            Ok(Outcome::Ran) => eprintln!("   {} done in {took:.1?}", scenario.name),
            Ok(Outcome::Skipped(why)) if require_components() => {
                eprintln!(
                    "   {} FAILED: component missing under MODSTASH_E2E=require: {why}",
                    scenario.name
                );
                failed.push(scenario.name);
            }
            Ok(Outcome::Skipped(why)) => {
                eprintln!("   {} skipped: {why}", scenario.name);
                skipped.push(scenario.name);
            }
            Err(_) => {
                eprintln!("   {} FAILED after {took:.1?} (panic above)", scenario.name);
                failed.push(scenario.name);
            }
        }
    }
    eprintln!("{}", report.render());
    if !skipped.is_empty() {
        eprintln!("  skipped: {}", skipped.join(", "));
    }
    if !report.all_held() {
        eprintln!("  some attempts did not hold (see the tallies above)");
        std::process::exit(1);
    }
    if !failed.is_empty() {
        eprintln!("  failed: {}", failed.join(", "));
        std::process::exit(1);
    }
    eprintln!("  all scenarios held");
}
