//! Fleets: three modstash processes share one storage and one lease backend; each module@version
//! is fetched from upstream once, also when a replica is killed in the middle of its fetches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use modstash::module::{ModulePath, ModuleVersion, Version};
use modstash::storage::{Storage, StorageUrl};

use crate::services::{MotoServer, RedisServer};
use crate::support::client;
use crate::support::fleet::{GeneratedModule, Replica, temp_dir};
use crate::support::upstream::Upstream;

const FILES: [&str; 3] = ["info", "mod", "zip"];

/// How the replicas share storage and leases.
pub(crate) struct FleetSetup {
    pub(crate) storage_url: String,
    /// The same storage, opened by the test to inspect what the fleet stored.
    pub(crate) storage: Storage,
    pub(crate) lease: String,
    pub(crate) env: Vec<(String, String)>,
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
        "4s".to_owned(),
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

async fn stored_list(setup: &FleetSetup, module: &GeneratedModule) -> Vec<String> {
    let path = ModulePath::parse(&module.path).unwrap();
    let list = setup.storage.read_list(&path).await.unwrap();
    list.versions.iter().map(|v| v.to_string()).collect()
}

async fn is_committed(setup: &FleetSetup, module: &GeneratedModule, version: &str) -> bool {
    let mv = ModuleVersion::new(
        ModulePath::parse(&module.path).unwrap(),
        Version::parse(version).unwrap(),
    )
    .unwrap();
    setup.storage.is_committed(&mv).await.unwrap()
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
    let list = stored_list(&setup, &module).await;
    for v in &module.versions {
        assert!(list.contains(v), "stored list misses {v}: {list:?}");
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

    // The doomed replica leads half the versions; the other half it never touches.
    let (led, untouched) = module.versions.split_at(module.versions.len() / 2);
    let client = client();
    let mut doomed_clients = Vec::new();
    for v in led {
        let url = format!("{}{}", doomed.base, module.url_path(v, "zip"));
        let client = client.clone();
        doomed_clients.push(tokio::spawn(async move { client.get(&url).send().await }));
    }
    // Kill it once upstream has seen its requests (it holds the leases then).
    let started = loop {
        let started: Vec<&String> = led
            .iter()
            .filter(|v| upstream.count(&module.url_path(v, "zip")) > 0)
            .collect();
        if started.len() == led.len() {
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
    for v in untouched {
        for ext in FILES {
            let count = upstream.count(&module.url_path(v, ext));
            assert_eq!(
                count, 1,
                "{v}.{ext}, never led by the dead replica, fetched {count} times"
            );
        }
    }
    let list = stored_list(&setup, &module).await;
    for v in &module.versions {
        assert!(list.contains(v), "stored list misses {v}: {list:?}");
        assert!(is_committed(&setup, &module, v).await, "{v} not committed");
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
        storage: Storage::open(&StorageUrl::File(dir)).unwrap(),
        lease: lease.to_owned(),
        env: Vec::new(),
    };
    (guard, setup)
}

/// A fresh bucket on the shared moto server; `None` (after reporting the skip) without moto.
pub(crate) fn s3_setup(lease: &str, test: &str) -> Option<FleetSetup> {
    let moto = match MotoServer::shared() {
        Ok(moto) => moto,
        Err(skip) => {
            skip.report(test);
            return None;
        }
    };
    let storage = moto.fresh_storage();
    let StorageUrl::S3 { bucket, .. } = storage.url().clone() else {
        unreachable!("moto storage is S3")
    };
    Some(FleetSetup {
        storage_url: format!("s3://{bucket}"),
        storage,
        lease: lease.to_owned(),
        env: moto.client_env(),
    })
}

fn redis_url(test: &str) -> Option<String> {
    match RedisServer::shared() {
        Ok(redis) => Some(redis.url().to_string()),
        Err(skip) => {
            skip.report(test);
            None
        }
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_s3_with_storage_leases_fetches_once() {
    if let Some(setup) = s3_setup("storage", "fleet_on_s3_with_storage_leases_fetches_once") {
        exactly_once(setup).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_s3_takes_over_from_a_killed_replica() {
    if let Some(setup) = s3_setup("storage", "fleet_on_s3_takes_over_from_a_killed_replica") {
        takeover_after_kill(setup).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_with_redis_leases_fetches_once() {
    let test = "fleet_with_redis_leases_fetches_once";
    if let Some(url) = redis_url(test) {
        let (_guard, setup) = local_setup(&url);
        exactly_once(setup).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_with_redis_leases_takes_over_from_a_killed_replica() {
    let test = "fleet_with_redis_leases_takes_over_from_a_killed_replica";
    if let Some(url) = redis_url(test) {
        let (_guard, setup) = local_setup(&url);
        takeover_after_kill(setup).await;
    }
}
