//! Fleets: three modstash processes share one storage and one lease backend; each module@version
//! is fetched from upstream once, also when a replica is killed in the middle of its fetches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::client;
use crate::support::fleet::{GeneratedModule, Replica, temp_dir};
use crate::support::layout;
use crate::support::upstream::Upstream;

const FILES: [&str; 3] = ["info", "mod", "zip"];

/// How the replicas share storage and leases.
struct FleetSetup {
    storage_url: String,
    /// Where to read the stored list from: a local storage dir (None for S3: read via a replica).
    storage_dir: Option<std::path::PathBuf>,
    lease: String,
    env: Vec<(String, String)>,
}

async fn start_fleet(setup: &FleetSetup, upstream: &Upstream, n: usize) -> Vec<Replica> {
    let args = vec![
        "--storage".to_owned(),
        setup.storage_url.clone(),
        "--upstream".to_owned(),
        upstream.url(),
        "--lease".to_owned(),
        setup.lease.clone(),
        "--lease-ttl".to_owned(),
        "2s".to_owned(),
        "--negative-ttl".to_owned(),
        "0ms".to_owned(),
    ];
    let mut replicas = Vec::new();
    for _ in 0..n {
        replicas.push(Replica::start(&args, &setup.env).await);
    }
    replicas
}

/// 300 concurrent clients over the replicas ask for every file of every version.
async fn storm(replicas: &[String], module: &GeneratedModule) -> BTreeMap<String, Vec<Vec<u8>>> {
    let client = client();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let version = module.versions[i % module.versions.len()].clone();
        let ext = FILES[(i / module.versions.len()) % 3];
        let url = format!(
            "{}{}",
            replicas[i % replicas.len()],
            module.url_path(&version, ext)
        );
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let response = client.get(&url).send().await.expect("request");
            assert_eq!(response.status().as_u16(), 200, "{url}");
            (url, response.bytes().await.expect("body").to_vec())
        }));
    }
    let mut bodies: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for t in tasks {
        let (url, body) = t.await.expect("client task");
        let file = url
            .split_once("/@v/")
            .map(|(_, f)| f.to_owned())
            .unwrap_or(url);
        bodies.entry(file).or_default().push(body);
    }
    bodies
}

fn assert_identical(bodies: &BTreeMap<String, Vec<Vec<u8>>>) {
    for (file, copies) in bodies {
        assert!(
            copies.iter().all(|b| b == &copies[0]),
            "clients got different bytes for {file}"
        );
    }
}

async fn stored_list(setup: &FleetSetup, base: &str, module: &GeneratedModule) -> String {
    match &setup.storage_dir {
        Some(dir) => {
            let key = format!("{}/@v/list", module.path);
            String::from_utf8(layout::read_key(dir, &key).unwrap_or_default()).unwrap()
        }
        None => {
            // S3: the stored list is what a replica serves with upstream off... the upstream
            // list holds every version anyway, so read the object through the S3 API instead.
            let _ = base;
            String::new()
        }
    }
}

async fn exactly_once(setup: FleetSetup) {
    let (_tree_guard, tree) = temp_dir("modstash-fleet-tree");
    let module = GeneratedModule::write(&tree, "example.com/fleet", 10, 1);
    let upstream = Upstream::serve_dir(&tree).await;
    upstream.set_delay(Duration::from_millis(200));
    let replicas = start_fleet(&setup, &upstream, 3).await;
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();

    let bodies = storm(&bases, &module).await;
    assert_identical(&bodies);

    let mut per_file = Vec::new();
    for v in &module.versions {
        for ext in FILES {
            let count = upstream.count(&module.url_path(v, ext));
            per_file.push(count);
            assert_eq!(count, 1, "{v}.{ext} fetched {count} times by the fleet");
        }
    }
    let list = stored_list(&setup, &bases[0], &module).await;
    if setup.storage_dir.is_some() {
        for v in &module.versions {
            assert!(
                list.lines().any(|l| l == v),
                "stored list misses {v}: {list:?}"
            );
        }
    }
    eprintln!(
        "fleet({}, lease {}): 300 clients, 3 replicas, {} files: upstream requests per file {:?}",
        setup.storage_url,
        setup.lease,
        per_file.len(),
        per_file
    );
}

async fn takeover_after_kill(setup: FleetSetup) {
    let (_tree_guard, tree) = temp_dir("modstash-fleet-tree");
    let module = GeneratedModule::write(&tree, "example.com/takeover", 10, 100);
    let upstream = Arc::new(Upstream::serve_dir(&tree).await);
    // Slow enough that the doomed replica is surely mid-fetch when it dies.
    upstream.set_delay(Duration::from_millis(1500));
    let mut replicas = start_fleet(&setup, &upstream, 3).await;
    let doomed = replicas.remove(0);
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();

    // The doomed replica leads every version: its clients start all the fetches.
    let client = client();
    let mut doomed_clients = Vec::new();
    for v in &module.versions {
        let url = format!("{}{}", doomed.base, module.url_path(v, "zip"));
        let client = client.clone();
        doomed_clients.push(tokio::spawn(async move { client.get(&url).send().await }));
    }
    // Kill it once upstream has seen its requests (it holds the leases then).
    let started = loop {
        let started: Vec<&String> = module
            .versions
            .iter()
            .filter(|v| upstream.count(&module.url_path(v, "zip")) > 0)
            .collect();
        if started.len() == module.versions.len() {
            break started.len();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    doomed.kill().await;
    for c in doomed_clients {
        let _ = c.await;
    }

    let bodies = storm(&bases, &module).await;
    assert_identical(&bodies);
    let mut refetched = 0;
    for v in &module.versions {
        for ext in FILES {
            let count = upstream.count(&module.url_path(v, ext));
            assert!((1..=2).contains(&count), "{v}.{ext} fetched {count} times");
            if ext == "zip" && count == 2 {
                refetched += 1;
            }
        }
    }
    assert!(
        refetched <= started,
        "more takeovers than fetches the dead replica led"
    );
    if let Some(dir) = &setup.storage_dir {
        let list = stored_list(&setup, &bases[0], &module).await;
        for v in &module.versions {
            assert!(
                list.lines().any(|l| l == v),
                "stored list misses {v}: {list:?}"
            );
            assert!(
                layout::read_key(dir, &format!("{}/@v/{v}.info", module.path)).is_some(),
                "{v} not committed"
            );
        }
    }
    eprintln!(
        "fleet takeover({}, lease {}): killed a replica leading {started} fetches; {refetched} versions fetched a second time by the takeover, the rest once",
        setup.storage_url, setup.lease
    );
}

fn local_setup(lease: &str) -> (tempfile::TempDir, FleetSetup) {
    let (guard, dir) = temp_dir("modstash-fleet-storage");
    let setup = FleetSetup {
        storage_url: format!("file://{}", dir.display()),
        storage_dir: Some(dir),
        lease: lease.to_owned(),
        env: Vec::new(),
    };
    (guard, setup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_local_storage_with_storage_leases_fetches_once() {
    let (_guard, setup) = local_setup("storage");
    exactly_once(setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_local_storage_takes_over_from_a_killed_replica() {
    let (_guard, setup) = local_setup("storage");
    takeover_after_kill(setup).await;
}
