//! Crash consistency: one modstash process on a file storage is SIGKILLed at random points while
//! clients fetch 200 cold versions, and restarted, until every version was served once. Then
//! storage must hold exactly what the commit protocol promises: `modstash verify` finds nothing
//! corrupt and no list missing a version, every committed file equals upstream's bytes, and a
//! fresh modstash with no upstream serves every version and lists it.
//!
//! The only residue a crash may leave is invisible: object_store's local staging files
//! (`{file}#{n}`, a write cut short before its rename) and files of a version without `.info`
//! (cut short before the commit marker; the next fetch overwrites them). They are counted.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::report::{Line, Report};
use crate::support::fleet::{Replica, temp_dir};
use crate::support::upstream::Upstream;
use crate::tree::{Target, Tree};
use crate::{Mode, Outcome, inspect, seed};

const SCENARIO: &str = "crash_loop";
/// Clients fetching at once: a kill usually lands on several fetches in flight, and few enough
/// versions complete between kills that there are dozens of kills even in a release build.
const CLIENTS: usize = 4;

/// What the clients saw.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    /// 200 with upstream's bytes.
    served: AtomicU64,
    /// Connection refused or cut: the process was killed under it (retried after the restart).
    interrupted: AtomicU64,
    /// Any other answer: a failure.
    wrong: Mutex<Vec<String>>,
}

enum Attempt {
    Served,
    Interrupted,
    Wrong(String),
}

/// Runs the kill loop, then checks storage.
pub async fn crash_loop(report: &Report, mode: Mode) -> Outcome {
    let (versions, per_module) = match mode {
        Mode::Short => (200, 50),
        Mode::Long => (600, 100),
    };
    let seed = seed();
    let tree = Arc::new(Tree::generate(
        "crash",
        versions / per_module,
        per_module,
        seed,
    ));
    let upstream = Arc::new(Upstream::serve_dir(tree.root()).await);
    // Kills land anywhere: in the upstream wait, the spool, the commit or the list merge.
    upstream.set_delay(Duration::from_millis(60));
    let (_storage_guard, storage_dir) = temp_dir("modstash-crash-storage");
    let storage_url = format!("file://{}", storage_dir.display());
    let args: Vec<String> = [
        "--storage",
        &storage_url,
        "--upstream",
        &upstream.url(),
        "--negative-ttl",
        "0ms",
    ]
    .map(str::to_owned)
    .to_vec();

    let replica = Replica::start(&args, &[]).await;
    let (base_tx, base_rx) = tokio::sync::watch::channel(replica.base.clone());
    let pending = Arc::new(Mutex::new(
        tree.targets().into_iter().collect::<VecDeque<_>>(),
    ));
    let left = Arc::new(AtomicU64::new(versions as u64));
    let all_served = CancellationToken::new();
    let tally = Arc::new(Tally::default());

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (tree, pending, left, all_served, tally) = (
            tree.clone(),
            pending.clone(),
            left.clone(),
            all_served.clone(),
            tally.clone(),
        );
        let mut base_rx = base_rx.clone();
        clients.push(tokio::spawn(async move {
            let client = crate::support::client();
            loop {
                let Some(target) = pending.lock().unwrap().pop_front() else {
                    return;
                };
                loop {
                    let base = base_rx.borrow_and_update().clone();
                    match fetch_version(&client, &base, &tree, &target, &tally).await {
                        Attempt::Served => break,
                        Attempt::Interrupted => {
                            // Killed under us: wait for the restart (at once if it happened already).
                            if base_rx.changed().await.is_err() {
                                return;
                            }
                        }
                        Attempt::Wrong(what) => {
                            tally.wrong.lock().unwrap().push(what);
                            break;
                        }
                    }
                }
                if left.fetch_sub(1, Ordering::SeqCst) == 1 {
                    all_served.cancel();
                }
            }
        }));
    }

    let killer = {
        let (upstream, all_served, args) = (upstream.clone(), all_served.clone(), args.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut replica = replica;
            let mut kills = 0u64;
            loop {
                // A kill point: a random moment after fetches are under way again.
                let seen = upstream.total();
                let delay = Duration::from_millis(rng.random_range(0..150));
                tokio::select! {
                    () = all_served.cancelled() => break,
                    () = async {
                        upstream.wait_total(seen + 1).await;
                        tokio::time::sleep(delay).await;
                    } => {}
                }
                replica.kill().await;
                kills += 1;
                replica = Replica::start(&args, &[]).await;
                if base_tx.send(replica.base.clone()).is_err() {
                    break;
                }
            }
            replica.kill().await;
            kills
        })
    };
    for c in clients {
        c.await.expect("client task");
    }
    all_served.cancel();
    let kills = killer.await.expect("killer task");

    let wrong = tally.wrong.lock().unwrap().clone();
    let (sent, served, interrupted) = (
        tally.sent.load(Ordering::SeqCst),
        tally.served.load(Ordering::SeqCst),
        tally.interrupted.load(Ordering::SeqCst),
    );
    report.record(Line::Requests, SCENARIO, sent, sent - wrong.len() as u64);
    eprintln!(
        "   {versions} versions, {kills} kills (seed {seed}): {sent} requests, {served} served, \
         {interrupted} cut by a kill and retried, {} wrong",
        wrong.len()
    );
    for w in wrong.iter().take(10) {
        eprintln!("   wrong answer: {w}");
    }

    let checked = check_storage(&tree, &storage_dir, &storage_url).await;
    report.record(Line::Versions, SCENARIO, checked.committed, checked.intact);
    eprintln!(
        "   storage: {} committed, {} intact; crash residue: {} orphans (files without .info), \
         {} staging files",
        checked.committed, checked.intact, checked.orphans, checked.staging
    );
    for p in checked.problems.iter().take(20) {
        eprintln!("   storage problem: {p}");
    }
    assert!(wrong.is_empty(), "wrong answers during the kill loop");
    assert!(checked.problems.is_empty(), "storage after the kill loop");
    assert_eq!(
        checked.committed, versions as u64,
        "every served version is committed"
    );
    Outcome::Ran
}

/// `.zip`, then `.info` and `.mod`: each must be upstream's bytes.
async fn fetch_version(
    client: &reqwest::Client,
    base: &str,
    tree: &Tree,
    target: &Target,
    tally: &Tally,
) -> Attempt {
    for ext in ["zip", "info", "mod"] {
        tally.sent.fetch_add(1, Ordering::SeqCst);
        let url = format!("{base}{}", tree.url_path(target, ext));
        let response = match client.get(&url).send().await {
            Ok(r) => r,
            Err(_) => {
                tally.interrupted.fetch_add(1, Ordering::SeqCst);
                return Attempt::Interrupted;
            }
        };
        let status = response.status().as_u16();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(_) => {
                tally.interrupted.fetch_add(1, Ordering::SeqCst);
                return Attempt::Interrupted;
            }
        };
        if status != 200 {
            return Attempt::Wrong(format!(
                "{url}: {status} {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        if body.as_ref() != tree.expected(target, ext).as_slice() {
            return Attempt::Wrong(format!("{url}: 200 with other bytes than upstream's"));
        }
        tally.served.fetch_add(1, Ordering::SeqCst);
    }
    Attempt::Served
}

/// What storage holds after the loop.
struct Checked {
    committed: u64,
    intact: u64,
    orphans: u64,
    staging: u64,
    problems: Vec<String>,
}

async fn check_storage(tree: &Tree, dir: &Path, storage_url: &str) -> Checked {
    let verify = inspect::verify(storage_url);
    let summary = &verify["summary"];
    let count = |field: &str| summary[field].as_u64().expect("verify summary count");
    let mut problems = Vec::new();
    for field in ["corrupt", "unreadable", "lists_wrong"] {
        if count(field) != 0 {
            problems.push(format!("verify: {field} {}", count(field)));
        }
    }
    if count("verified") != count("versions") {
        problems.push(format!(
            "verify: {} of {} committed versions verified",
            count("verified"),
            count("versions")
        ));
    }
    // A crash between a commit and its list merge must not leave the version unlisted for good.
    for list in verify["lists"].as_array().into_iter().flatten() {
        problems.push(format!("verify: list problem {list}"));
    }
    for corrupt in verify["corrupt"].as_array().into_iter().flatten() {
        problems.push(format!("verify: corrupt {corrupt}"));
    }

    // Independently of verify: every stored file is upstream's, every version listed.
    let mut intact = 0;
    let lists: BTreeMap<usize, String> = (0..tree.modules.len())
        .map(|m| {
            let list = std::fs::read_to_string(stored(dir, &tree.list_path(m))).unwrap_or_default();
            (m, list)
        })
        .collect();
    for target in tree.targets() {
        let mut ok = true;
        for ext in ["info", "mod", "zip"] {
            let file = stored(dir, &tree.url_path(&target, ext));
            if std::fs::read(&file).ok() != Some(tree.expected(&target, ext)) {
                problems.push(format!(
                    "{}: missing or not upstream's bytes",
                    file.display()
                ));
                ok = false;
            }
        }
        let hash_file = stored(dir, &tree.url_path(&target, "ziphash"));
        let stored_hash = std::fs::read_to_string(&hash_file).unwrap_or_default();
        if stored_hash.trim() != expected_hash(tree, &target) {
            problems.push(format!("{}: not the zip's h1: hash", hash_file.display()));
            ok = false;
        }
        if !lists[&target.module].lines().any(|l| l == target.version) {
            problems.push(format!(
                "{}@{} committed but not in @v/list",
                tree.modules[target.module].path, target.version
            ));
            ok = false;
        }
        intact += u64::from(ok);
    }
    problems.extend(serve_without_upstream(tree, storage_url).await);
    Checked {
        committed: count("versions"),
        intact,
        orphans: count("orphans"),
        staging: count("staging_files"),
        problems,
    }
}

fn stored(dir: &Path, url_path: &str) -> PathBuf {
    dir.join(url_path.trim_start_matches('/'))
}

/// The `h1:` of upstream's zip (what `go.sum` would say).
fn expected_hash(tree: &Tree, target: &Target) -> String {
    let (_guard, dir) = temp_dir("modstash-crash-hash");
    let zip = dir.join("z.zip");
    std::fs::write(&zip, tree.expected(target, "zip")).unwrap();
    let mv = modstash::module::ModuleVersion::new(
        modstash::module::ModulePath::parse(&tree.modules[target.module].path).unwrap(),
        modstash::module::Version::parse(&target.version).unwrap(),
    )
    .unwrap();
    modstash::module::check_zip_file(&zip, &mv, &Default::default())
        .unwrap()
        .h1
}

/// A fresh modstash with `--upstream off` serves every version and lists it: the storage alone
/// is a complete proxy.
async fn serve_without_upstream(tree: &Tree, storage_url: &str) -> Vec<String> {
    let args = ["--storage", storage_url, "--upstream", "off"].map(str::to_owned);
    let replica = Replica::start(&args, &[]).await;
    let mut problems = Vec::new();
    for m in 0..tree.modules.len() {
        let list = crate::support::get(&format!("{}{}", replica.base, tree.list_path(m))).await;
        let text = list.text();
        for v in &tree.modules[m].versions {
            if list.status != 200 || !text.lines().any(|l| l == v) {
                problems.push(format!(
                    "served list of {} misses {v} ({})",
                    tree.modules[m].path, list.status
                ));
            }
        }
    }
    for target in tree.targets() {
        for ext in ["info", "mod", "zip"] {
            let url = format!("{}{}", replica.base, tree.url_path(&target, ext));
            let got = crate::support::get(&url).await;
            if got.status != 200 || got.body != tree.expected(&target, ext) {
                problems.push(format!("{url} with upstream off: {}", got.status));
            }
        }
    }
    replica.kill().await;
    problems
}
