//! Load soak: three replicas (the real binary) share one file storage with `--lease storage`; a
//! fixed-rate mix of warm hits, cold misses and lists is spread over them round-robin while one
//! replica is SIGKILLed and restarted every period (a minute in long mode, 12 s in short).
//!
//! The client behaves like a load balancer: a request whose connection is refused or cut (the
//! replica just died) is sent again to the next replica, and counted. Then: no request for a
//! stored version may fail, each zip is fetched from upstream once (a version whose fetch was
//! under way when a replica died may be fetched again by the replica taking over: those are
//! counted and must be among the fetches in flight at a kill), storage verifies clean, and the
//! memory of the replica that is never killed stays flat.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::report::{Line, Report};
use crate::support::fleet::{Replica, temp_dir};
use crate::support::upstream::Upstream;
use crate::support::{Fetched, client, try_send};
use crate::tree::{Target, Tree};
use crate::{Mode, Outcome, inspect, seed};

const SCENARIO: &str = "soak";
const REPLICAS: usize = 3;
/// Requests per second, all kinds together.
const RATE: u64 = 40;
/// Versions stored before the load starts.
const WARM_PER_MODULE: usize = 10;
const MODULES: usize = 4;

struct Plan {
    duration: Duration,
    kill_every: Duration,
    /// One tick in this many is a cold miss.
    cold_every: u64,
}

impl Plan {
    fn for_mode(mode: Mode) -> Plan {
        match mode {
            Mode::Short => Plan {
                duration: Duration::from_secs(75),
                kill_every: Duration::from_secs(12),
                cold_every: 10,
            },
            Mode::Long => Plan {
                duration: Duration::from_secs(600),
                kill_every: Duration::from_secs(60),
                cold_every: 40,
            },
        }
    }

    fn cold_versions(&self) -> usize {
        (self.duration.as_secs() * RATE / self.cold_every) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Warm,
    Cold,
    List,
}

/// Per kind: sent, answered as expected, and how many needed the balancer's retry.
#[derive(Default)]
struct Tallies {
    sent: BTreeMap<Kind, AtomicU64>,
    ok: BTreeMap<Kind, AtomicU64>,
    retried: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tallies {
    fn new() -> Tallies {
        let kinds = [Kind::Warm, Kind::Cold, Kind::List];
        Tallies {
            sent: kinds.iter().map(|k| (*k, AtomicU64::new(0))).collect(),
            ok: kinds.iter().map(|k| (*k, AtomicU64::new(0))).collect(),
            ..Tallies::default()
        }
    }

    fn get(map: &BTreeMap<Kind, AtomicU64>, kind: Kind) -> u64 {
        map[&kind].load(Ordering::SeqCst)
    }
}

/// What the load, the killer and the sampler share.
struct Shared {
    tree: Tree,
    upstream: Upstream,
    storage_dir: PathBuf,
    bases: RwLock<Vec<String>>,
    /// Versions known stored: pre-stored ones, and cold ones once served.
    stored: Mutex<Vec<Target>>,
    cold: Vec<Target>,
    next_cold: AtomicUsize,
    /// Zips whose fetch was under way (requested upstream, not committed) when a replica died.
    in_flight_at_kill: Mutex<BTreeSet<String>>,
    tallies: Tallies,
}

/// Runs the soak.
pub async fn soak(report: &Report, mode: Mode) -> Outcome {
    let plan = Plan::for_mode(mode);
    let per_module = WARM_PER_MODULE + plan.cold_versions().div_ceil(MODULES) + 1;
    let tree = Tree::generate("soak", MODULES, per_module, seed());
    let upstream = Upstream::serve_dir(tree.root()).await;
    let (_storage_guard, storage_dir) = temp_dir("modstash-soak-storage");
    let args: Vec<String> = [
        "--storage",
        &format!("file://{}", storage_dir.display()),
        "--upstream",
        &upstream.url(),
        "--lease",
        "storage",
        "--lease-ttl",
        "4s",
        "--negative-ttl",
        "0ms",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(Some(Replica::start(&args, &[]).await));
    }
    let (warm, cold): (Vec<Target>, Vec<Target>) = tree
        .targets()
        .into_iter()
        .partition(|t| tree.modules[t.module].versions[..WARM_PER_MODULE].contains(&t.version));
    let shared = Arc::new(Shared {
        bases: RwLock::new(replicas.iter().flatten().map(|r| r.base.clone()).collect()),
        stored: Mutex::new(Vec::new()),
        cold,
        next_cold: AtomicUsize::new(0),
        in_flight_at_kill: Mutex::new(BTreeSet::new()),
        tallies: Tallies::new(),
        tree,
        upstream,
        storage_dir: storage_dir.clone(),
    });
    store_warm(&shared, &warm).await;
    let warm_fetches = shared.upstream.total();
    // From now on a fetch lasts long enough that kills often catch one, so takeovers happen.
    shared.upstream.set_delay(Duration::from_millis(300));

    let stop = CancellationToken::new();
    let survivor_pid = replicas[0].as_ref().unwrap().pid();
    let sampler = tokio::spawn(sample_rss(survivor_pid, stop.clone()));
    let load = tokio::spawn(run_load(
        shared.clone(),
        plan.duration,
        plan.cold_every,
        stop.clone(),
    ));
    let started = Instant::now();
    let mut kills = 0;
    let mut next_kill = started + plan.kill_every;
    while next_kill + plan.kill_every / 2 < started + plan.duration {
        tokio::time::sleep_until(next_kill.into()).await;
        // Slot 0 is the survivor whose memory is watched; the others take turns dying.
        let slot = 1 + kills % (REPLICAS - 1);
        note_fetches_in_flight(&shared);
        replicas[slot].take().unwrap().kill().await;
        kills += 1;
        let replica = Replica::start(&args, &[]).await;
        shared.bases.write().unwrap()[slot] = replica.base.clone();
        replicas[slot] = Some(replica);
        next_kill += plan.kill_every;
    }
    load.await.expect("load task");
    stop.cancel();
    let rss = sampler.await.expect("sampler task");
    for replica in replicas.into_iter().flatten() {
        replica.kill().await;
    }

    let t = &shared.tallies;
    let failures = t.failures.lock().unwrap().clone();
    let (sent, ok): (u64, u64) = [Kind::Warm, Kind::Cold, Kind::List]
        .iter()
        .map(|k| (Tallies::get(&t.sent, *k), Tallies::get(&t.ok, *k)))
        .fold((0, 0), |(s, o), (ks, ko)| (s + ks, o + ko));
    report.record(Line::Requests, SCENARIO, sent, ok);
    eprintln!(
        "   {:.0?} at {RATE}/s over {REPLICAS} replicas, {kills} kills: warm {}/{} ok, cold {}/{} ok, \
         lists {}/{} ok; {} sent again to another replica after a refused or cut connection",
        plan.duration,
        Tallies::get(&t.ok, Kind::Warm),
        Tallies::get(&t.sent, Kind::Warm),
        Tallies::get(&t.ok, Kind::Cold),
        Tallies::get(&t.sent, Kind::Cold),
        Tallies::get(&t.ok, Kind::List),
        Tallies::get(&t.sent, Kind::List),
        t.retried.load(Ordering::SeqCst),
    );
    for f in failures.iter().take(10) {
        eprintln!("   failed: {f}");
    }

    let fetches = upstream_fetches(&shared, warm_fetches);
    let verify = inspect::verify(&format!("file://{}", storage_dir.display()));
    let summary = &verify["summary"];
    let count = |field: &str| summary[field].as_u64().expect("verify summary count");
    report.record(
        Line::Versions,
        SCENARIO,
        count("versions"),
        if count("corrupt") + count("lists_wrong") + count("unreadable") == 0 {
            count("verified")
        } else {
            0
        },
    );
    eprintln!(
        "   storage: {} versions, {} verified, {} corrupt, {} lists wrong; residue: {} orphans, \
         {} staging files",
        count("versions"),
        count("verified"),
        count("corrupt"),
        count("lists_wrong"),
        count("orphans"),
        count("staging_files"),
    );
    let memory = rss.verdict();
    eprintln!("   {}", memory.text);

    assert!(failures.is_empty(), "failed requests");
    assert_eq!(
        fetches.duplicated_outside_kills,
        Vec::<String>::new(),
        "zips fetched twice though no replica died during their fetch"
    );
    assert!(memory.flat, "memory of the surviving replica grew");
    Outcome::Ran
}

/// Stores the warm versions through the fleet before the load begins.
async fn store_warm(shared: &Shared, warm: &[Target]) {
    let client = client();
    for (i, target) in warm.iter().enumerate() {
        for ext in ["info", "mod", "zip"] {
            let (got, _) = balanced(shared, &client, i, &shared.tree.url_path(target, ext)).await;
            let got = got.expect("warm-up request");
            assert_eq!(got.status, 200, "warm-up {target:?}.{ext}: {}", got.text());
        }
    }
    shared.stored.lock().unwrap().extend(warm.iter().cloned());
}

/// A fixed rate of requests, each on its own task (a slow answer does not slow the rate).
async fn run_load(
    shared: Arc<Shared>,
    duration: Duration,
    cold_every: u64,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rng = StdRng::seed_from_u64(seed());
    let ticks = duration.as_secs() * RATE;
    let client = client();
    let mut requests = Vec::new();
    for tick in 0..ticks {
        if stop.is_cancelled() {
            break;
        }
        ticker.tick().await;
        let kind = match tick % cold_every {
            0 => Kind::Cold,
            1 | 2 => Kind::List,
            _ => Kind::Warm,
        };
        let (shared, client) = (shared.clone(), client.clone());
        let pick = rng.random::<u64>();
        requests.push(tokio::spawn(async move {
            one_request(&shared, &client, tick as usize, kind, pick).await;
        }));
    }
    for r in requests {
        r.await.expect("request task");
    }
}

async fn one_request(shared: &Shared, client: &reqwest::Client, n: usize, kind: Kind, pick: u64) {
    let tree = &shared.tree;
    let (path, expected, cold) = match kind {
        Kind::Cold => {
            let i = shared.next_cold.fetch_add(1, Ordering::SeqCst);
            let Some(target) = shared.cold.get(i) else {
                return;
            };
            let path = tree.url_path(target, "zip");
            (
                path,
                Expect::Bytes(tree.expected(target, "zip")),
                Some(target.clone()),
            )
        }
        Kind::Warm => {
            let target = {
                let stored = shared.stored.lock().unwrap();
                stored[pick as usize % stored.len()].clone()
            };
            let ext = ["info", "mod", "zip"][(pick >> 32) as usize % 3];
            let expected = Expect::Bytes(tree.expected(&target, ext));
            (tree.url_path(&target, ext), expected, None)
        }
        Kind::List => {
            let module = pick as usize % MODULES;
            (tree.list_path(module), Expect::Listing(module), None)
        }
    };
    let t = &shared.tallies;
    t.sent[&kind].fetch_add(1, Ordering::SeqCst);
    let (got, retries) = balanced(shared, client, n, &path).await;
    t.retried.fetch_add(retries, Ordering::SeqCst);
    let verdict = match got {
        Err(e) => Err(format!("{kind:?} {path}: no replica answered: {e}")),
        Ok(got) => check(&got, &expected, kind, &path, &shared.tree),
    };
    match verdict {
        Ok(()) => {
            t.ok[&kind].fetch_add(1, Ordering::SeqCst);
            if let Some(target) = cold {
                shared.stored.lock().unwrap().push(target);
            }
        }
        Err(e) => t.failures.lock().unwrap().push(e),
    }
}

/// What a 200 must hold.
enum Expect {
    /// Upstream's bytes.
    Bytes(Vec<u8>),
    /// The module's list: at least the versions stored before the load (upstream lists every
    /// version, and the answer merges it with storage's).
    Listing(usize),
}

fn check(
    got: &Fetched,
    expected: &Expect,
    kind: Kind,
    path: &str,
    tree: &Tree,
) -> Result<(), String> {
    if got.status != 200 {
        return Err(format!(
            "{kind:?} {path}: {} {}",
            got.status,
            got.text().trim()
        ));
    }
    match expected {
        Expect::Bytes(bytes) if got.body != *bytes => Err(format!(
            "{kind:?} {path}: 200 with other bytes than upstream's"
        )),
        Expect::Bytes(_) => Ok(()),
        Expect::Listing(module) => {
            let text = got.text();
            let missing: Vec<&String> = tree.modules[*module].versions[..WARM_PER_MODULE]
                .iter()
                .filter(|v| !text.lines().any(|l| l == v.as_str()))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{path}: misses stored {missing:?}"))
            }
        }
    }
}

/// Sends `path` to replica `n % 3`; a refused or cut connection (a replica that just died) is
/// sent to the next one, as a load balancer does. Returns the answer and how many retries it took.
async fn balanced(
    shared: &Shared,
    client: &reqwest::Client,
    n: usize,
    path: &str,
) -> (Result<Fetched, String>, u64) {
    let mut last = String::new();
    for attempt in 0..REPLICAS {
        let base = shared.bases.read().unwrap()[(n + attempt) % REPLICAS].clone();
        match try_send(client.get(format!("{base}{path}"))).await {
            Ok(got) => return (Ok(got), attempt as u64),
            Err(e) => last = e,
        }
    }
    (Err(last), REPLICAS as u64)
}

/// Before a kill: every zip upstream was asked for whose version is not committed yet.
fn note_fetches_in_flight(shared: &Shared) {
    let upstream_seen = shared.upstream.counts();
    let mut noted = shared.in_flight_at_kill.lock().unwrap();
    for target in &shared.cold {
        let zip = shared.tree.url_path(target, "zip");
        if upstream_seen.contains_key(&zip) && !committed(&shared.storage_dir, &shared.tree, target)
        {
            noted.insert(zip);
        }
    }
}

fn committed(storage: &Path, tree: &Tree, target: &Target) -> bool {
    storage
        .join(tree.url_path(target, "info").trim_start_matches('/'))
        .exists()
}

struct Fetches {
    duplicated_outside_kills: Vec<String>,
}

/// Upstream requests per zip: more than one only where a fetch was under way at a kill.
fn upstream_fetches(shared: &Shared, warm_fetches: usize) -> Fetches {
    let counts = shared.upstream.counts();
    let in_flight = shared.in_flight_at_kill.lock().unwrap();
    let zips: Vec<(&String, &usize)> = counts.iter().filter(|(p, _)| p.ends_with(".zip")).collect();
    let twice: Vec<&String> = zips
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(p, _)| *p)
        .collect();
    let outside: Vec<String> = twice
        .iter()
        .filter(|p| !in_flight.contains(**p))
        .map(|p| (*p).clone())
        .collect();
    eprintln!(
        "   upstream: {} zips fetched ({} upstream requests during the warm-up), {} fetched again \
         after their leader was killed ({} fetches were under way at a kill), {} fetched again otherwise",
        zips.len(),
        warm_fetches,
        twice.len() - outside.len(),
        in_flight.len(),
        outside.len()
    );
    Fetches {
        duplicated_outside_kills: outside,
    }
}

/// VmRSS samples of one process, one a second.
struct Rss {
    samples_kib: Vec<u64>,
}

struct MemoryVerdict {
    flat: bool,
    text: String,
}

impl Rss {
    /// Flat: the last quarter's peak is at most 1.5x the first quarter's plus 20 MiB (the first
    /// quarter already includes the warm caches and a kill's takeover).
    fn verdict(&self) -> MemoryVerdict {
        let n = self.samples_kib.len();
        if n < 8 {
            return MemoryVerdict {
                flat: false,
                text: format!("memory: only {n} samples"),
            };
        }
        let quarter = n / 4;
        let first = *self.samples_kib[..quarter].iter().max().unwrap();
        let last = *self.samples_kib[n - quarter..].iter().max().unwrap();
        let bound = first * 3 / 2 + 20 * 1024;
        MemoryVerdict {
            flat: last <= bound,
            text: format!(
                "memory of the never-killed replica: peak {} MiB in the first quarter, {} MiB in \
                 the last (bound {} MiB), overall {}..{} MiB over {n} samples",
                first / 1024,
                last / 1024,
                bound / 1024,
                self.samples_kib.iter().min().unwrap() / 1024,
                self.samples_kib.iter().max().unwrap() / 1024,
            ),
        }
    }
}

async fn sample_rss(pid: u32, stop: CancellationToken) -> Rss {
    let mut samples_kib = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return Rss { samples_kib },
            _ = ticker.tick() => {}
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            samples_kib.push(kib);
        }
    }
}
