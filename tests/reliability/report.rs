//! The tallies the suite prints at the end: what was tried against modstash and how much of it held.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One line of the final summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Line {
    /// Upstream and storage faults injected / survived (clear error, nothing committed, retry works).
    Faults,
    /// Hostile requests tried / rejected as they should be.
    BadInputs,
    /// Versions committed / verified intact (zip matches `.ziphash`, reachable through `list`).
    Versions,
    /// Requests sent / answered as expected (the summary shows failures = tried - passed).
    Requests,
}

impl Line {
    fn label(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Line::Faults => ("faults", "injected", "survived"),
            Line::BadInputs => ("bad inputs", "tried", "rejected"),
            Line::Versions => ("versions", "committed", "verified"),
            Line::Requests => ("requests", "sent", "ok"),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    tried: u64,
    passed: u64,
}

/// Shared by every scenario; the runner prints it once all have run.
#[derive(Debug, Default)]
pub struct Report {
    tallies: Mutex<BTreeMap<(Line, &'static str), Tally>>,
}

impl Report {
    /// Adds `tried` attempts of which `passed` held, under `line`, for `scenario`.
    pub fn record(&self, line: Line, scenario: &'static str, tried: u64, passed: u64) {
        let mut tallies = self.tallies.lock().expect("report lock");
        let tally = tallies.entry((line, scenario)).or_default();
        tally.tried += tried;
        tally.passed += passed;
    }

    /// Adds one attempt that held (`ok`) or not.
    pub fn one(&self, line: Line, scenario: &'static str, ok: bool) {
        self.record(line, scenario, 1, u64::from(ok));
    }

    /// True when every attempt recorded so far held.
    pub fn all_held(&self) -> bool {
        let tallies = self.tallies.lock().expect("report lock");
        tallies.values().all(|t| t.tried == t.passed)
    }

    /// The summary table: per line and scenario, then per line in total.
    pub fn render(&self) -> String {
        let tallies = self.tallies.lock().expect("report lock");
        let mut out = String::from("\n== reliability summary\n");
        let mut totals: BTreeMap<Line, Tally> = BTreeMap::new();
        for ((line, scenario), tally) in tallies.iter() {
            let (what, tried, passed) = line.label();
            out += &format!(
                "  {what:<11} {scenario:<28} {tried} {:>7} / {passed} {:>7}\n",
                tally.tried, tally.passed
            );
            let total = totals.entry(*line).or_default();
            total.tried += tally.tried;
            total.passed += tally.passed;
        }
        out += "  --\n";
        for (line, total) in totals {
            let (what, tried, passed) = line.label();
            out += &format!(
                "  {what}: {tried} {} / {passed} {} / failed {}\n",
                total.tried,
                total.passed,
                total.tried - total.passed
            );
        }
        out
    }
}
