//! Storage faults: a storage that stops taking writes (a tmpfs remounted read-only), one that
//! fills up (a small tmpfs), and an S3 server that goes away mid-fetch (moto stopped, restarted
//! empty). In each, the real binary must answer new versions with a 503 naming the condition,
//! keep serving what it can still read, show nothing half-written, say so on `/readyz`, and
//! recover when storage does, without a restart.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::report::{Line, Report};
use crate::services::MotoServer;
use crate::support::fleet::{Replica, temp_dir};
use crate::support::upstream::Upstream;
use crate::support::{Fetched, get};
use crate::tree::{Target, Tree};
use crate::{Mode, Outcome, seed};

const SCENARIO: &str = "storage_faults";
/// Longest wait for `/readyz` to notice a change (it reuses a probe result for a second).
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Runs every storage fault this machine can inject.
pub async fn storage_faults(report: &Report, _mode: Mode) -> Outcome {
    let tree = Tree::generate("faults", 1, 9, seed());
    let upstream = Upstream::serve_dir(tree.root()).await;
    let targets = tree.targets();
    let mut skipped = Vec::new();
    match Tmpfs::mount("16m") {
        Ok(fs) => read_only(report, &tree, &upstream, &fs, &targets[0..3]).await,
        Err(why) => skipped.push(why),
    }
    match Tmpfs::mount("8m") {
        Ok(fs) => full(report, &tree, &upstream, &fs, &targets[3..6]).await,
        Err(why) => skipped.push(why),
    }
    match MotoServer::start() {
        Ok(moto) => s3_down(report, &tree, &upstream, moto, &targets[6..9]).await,
        Err(skip) => skipped.push(format!("{}: {}", skip.component, skip.reason)),
    }
    if skipped.is_empty() {
        Outcome::Ran
    } else {
        Outcome::Skipped(skipped.join("; "))
    }
}

/// Read-only: stored versions keep being served, new ones are a clear 503, `/readyz` is 503
/// until the filesystem takes writes again.
async fn read_only(report: &Report, tree: &Tree, upstream: &Upstream, fs: &Tmpfs, t: &[Target]) {
    let mut case = Case::new("read-only filesystem");
    let (stored, refused) = (&t[0], &t[1]);
    let replica = Replica::start(&args(&fs.storage_url(), upstream), &[]).await;
    case.expect_version(&replica, tree, stored).await;
    case.expect_ready(&replica, true, "ok").await;

    fs.remount("ro");
    case.expect_ready(&replica, false, "read-only").await;
    case.expect_unavailable(&replica, tree, refused, "storage is read-only")
        .await;
    case.expect_version(&replica, tree, stored).await;
    case.expect_nothing_of(&fs.storage(), tree, refused);

    fs.remount("rw");
    case.expect_ready(&replica, true, "ok").await;
    case.expect_version(&replica, tree, refused).await;
    case.expect_committed(&fs.storage(), tree, refused);
    replica.kill().await;
    case.finish(report);
}

/// Full: a zip that does not fit is a clear 503 and leaves no commit marker; a storage with no
/// room left at all is not ready; freeing space is enough to recover.
async fn full(report: &Report, tree: &Tree, upstream: &Upstream, fs: &Tmpfs, t: &[Target]) {
    let mut case = Case::new("full filesystem");
    let (stored, refused) = (&t[0], &t[1]);
    let replica = Replica::start(&args(&fs.storage_url(), upstream), &[]).await;
    case.expect_version(&replica, tree, stored).await;

    // Room for the small files, not for the zip: the commit fails half way.
    let filler = fs.fill(tree.expected(refused, "zip").len() as u64 / 2);
    case.expect_unavailable(&replica, tree, refused, "storage is full")
        .await;
    case.expect_no_commit(&fs.storage(), tree, refused);
    case.expect_version(&replica, tree, stored).await;
    let rest = fs.fill(0);
    case.expect_ready(&replica, false, "full").await;

    for f in [filler, rest] {
        std::fs::remove_file(f).unwrap();
    }
    case.expect_ready(&replica, true, "ok").await;
    case.expect_version(&replica, tree, refused).await;
    case.expect_committed(&fs.storage(), tree, refused);
    replica.kill().await;
    case.finish(report);
}

/// S3 stopped while a fetch runs: that fetch and new ones are a 503, `/readyz` is 503; once S3 is
/// back (empty: moto keeps nothing), versions are fetched and stored again.
async fn s3_down(
    report: &Report,
    tree: &Tree,
    upstream: &Upstream,
    mut moto: MotoServer,
    t: &[Target],
) {
    let mut case = Case::new("S3 server stopped");
    let (stored, cut, later) = (&t[0], &t[1], &t[2]);
    let bucket = moto.create_bucket();
    let replica = Replica::start(
        &args(&format!("s3://{bucket}"), upstream),
        &moto.client_env(),
    )
    .await;
    case.expect_version(&replica, tree, stored).await;
    case.expect_ready(&replica, true, "ok").await;

    // Stopped while a fetch waits on upstream: its commit finds no S3.
    upstream.set_delay(Duration::from_millis(500));
    let url = format!("{}{}", replica.base, tree.url_path(cut, "zip"));
    let in_flight = tokio::spawn(async move { try_get(&url).await });
    upstream.wait_for(&tree.url_path(cut, "zip"), 1).await;
    moto.stop();
    let started = Instant::now();
    match in_flight.await.unwrap() {
        Ok(answer) => case.expect_503(
            &answer,
            "storage unavailable",
            "the fetch cut by the S3 stop",
        ),
        Err(_) => {
            case.count(true);
            eprintln!("   S3 stopped: the live download in flight was cut short");
        }
    }
    eprintln!(
        "   S3 stopped: the fetch in flight ended after {:.1?}",
        started.elapsed()
    );
    upstream.set_delay(Duration::ZERO);
    case.expect_ready(&replica, false, "storage").await;
    let started = Instant::now();
    case.expect_unavailable(&replica, tree, later, "storage unavailable")
        .await;
    eprintln!(
        "   S3 stopped: a new version answered 503 after {:.1?}",
        started.elapsed()
    );

    moto.restart().expect("moto restarts");
    moto.create_named_bucket(&bucket);
    case.expect_ready(&replica, true, "ok").await;
    for target in [later, cut, stored] {
        case.expect_version(&replica, tree, target).await;
    }
    replica.kill().await;
    case.finish(report);
}

fn args(storage_url: &str, upstream: &Upstream) -> Vec<String> {
    [
        "--storage",
        storage_url,
        "--upstream",
        &upstream.url(),
        "--negative-ttl",
        "0ms",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// One injected fault: held when every expectation did.
struct Case {
    name: &'static str,
    failures: Vec<String>,
    requests: u64,
    requests_ok: u64,
}

impl Case {
    fn new(name: &'static str) -> Case {
        eprintln!("   fault: {name}");
        Case {
            name,
            failures: Vec::new(),
            requests: 0,
            requests_ok: 0,
        }
    }

    fn expect(&mut self, held: bool, what: impl Display) {
        if !held {
            eprintln!("   {}: did not hold: {what}", self.name);
            self.failures.push(what.to_string());
        }
    }

    fn count(&mut self, ok: bool) {
        self.requests += 1;
        self.requests_ok += u64::from(ok);
    }

    /// `.info`, `.mod` and `.zip` answer 200 with upstream's bytes.
    async fn expect_version(&mut self, replica: &Replica, tree: &Tree, target: &Target) {
        for ext in ["info", "mod", "zip"] {
            let url = format!("{}{}", replica.base, tree.url_path(target, ext));
            let got = get(&url).await;
            let ok = got.status == 200 && got.body == tree.expected(target, ext);
            self.count(ok);
            self.expect(ok, format!("{url}: {} {}", got.status, got.text().trim()));
        }
    }

    /// A new version is refused: `.info` with a 503 whose body names the condition; `.zip`
    /// likewise, or, when the live download had already started, with a body cut short (a
    /// download only completes once the version is stored), never with a whole 200.
    async fn expect_unavailable(
        &mut self,
        replica: &Replica,
        tree: &Tree,
        target: &Target,
        reason: &str,
    ) {
        let url = format!("{}{}", replica.base, tree.url_path(target, "zip"));
        match try_get(&url).await {
            Ok(got) => self.expect_503(&got, reason, &url),
            Err(_) => {
                self.count(true);
                eprintln!("   {}: {url}: live download cut short", self.name);
            }
        }
        let url = format!("{}{}", replica.base, tree.url_path(target, "info"));
        let got = get(&url).await;
        self.expect_503(&got, reason, &url);
    }

    fn expect_503(&mut self, got: &Fetched, reason: &str, what: &str) {
        let ok = got.status == 503 && got.text().contains(reason);
        self.count(ok);
        self.expect(
            ok,
            format!(
                "{what}: want 503 saying {reason:?}, got {} {:?}",
                got.status,
                got.text().trim()
            ),
        );
    }

    /// Polls `/readyz` until it is 200 (`ready`) or 503 with `reason` in the body.
    async fn expect_ready(&mut self, replica: &Replica, ready: bool, reason: &str) {
        let want = if ready { 200 } else { 503 };
        let deadline = Instant::now() + READY_DEADLINE;
        let last = loop {
            let got = get(&format!("{}/readyz", replica.base)).await;
            let held = got.status == want && got.text().contains(reason);
            if held || Instant::now() > deadline {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ok = last.status == want && last.text().contains(reason);
        if ok && !ready {
            eprintln!(
                "   {}: /readyz {} {:?}",
                self.name,
                last.status,
                last.text().trim()
            );
        }
        self.expect(
            ok,
            format!(
                "/readyz: want {want} saying {reason:?}, got {} {:?}",
                last.status,
                last.text().trim()
            ),
        );
    }

    /// No file of `target` exists at all.
    fn expect_nothing_of(&mut self, storage: &Path, tree: &Tree, target: &Target) {
        for ext in ["info", "mod", "zip", "ziphash"] {
            let file = stored(storage, tree, target, ext);
            self.expect(!file.exists(), format!("{} exists", file.display()));
        }
    }

    /// No commit marker, and nothing but whole files (no staging leftovers) of `target`.
    fn expect_no_commit(&mut self, storage: &Path, tree: &Tree, target: &Target) {
        let info = stored(storage, tree, target, "info");
        self.expect(!info.exists(), format!("{} exists", info.display()));
        let dir = info.parent().unwrap();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            self.expect(
                !name.contains('#'),
                format!("staging file {name} left behind"),
            );
        }
        for ext in ["mod", "zip", "ziphash"] {
            let file = stored(storage, tree, target, ext);
            if let Ok(bytes) = std::fs::read(&file) {
                let whole = ext == "ziphash" || bytes == tree.expected(target, ext);
                self.expect(whole, format!("{} is not whole", file.display()));
            }
        }
    }

    /// Every file of `target` is stored, with upstream's bytes.
    fn expect_committed(&mut self, storage: &Path, tree: &Tree, target: &Target) {
        for ext in ["info", "mod", "zip"] {
            let file = stored(storage, tree, target, ext);
            let ok = std::fs::read(&file).ok() == Some(tree.expected(target, ext));
            self.expect(ok, format!("{} missing or wrong", file.display()));
        }
    }

    fn finish(self, report: &Report) {
        report.one(Line::Faults, SCENARIO, self.failures.is_empty());
        report.record(Line::Requests, SCENARIO, self.requests, self.requests_ok);
        eprintln!(
            "   {}: {} ({} requests, {} as expected)",
            self.name,
            if self.failures.is_empty() {
                "held"
            } else {
                "DID NOT HOLD"
            },
            self.requests,
            self.requests_ok
        );
    }
}

/// `GET url`; `Err` when the body is cut short (the answer had started as a live download).
async fn try_get(url: &str) -> Result<Fetched, String> {
    crate::support::try_send(crate::support::client().get(url)).await
}

fn stored(storage: &Path, tree: &Tree, target: &Target, ext: &str) -> PathBuf {
    storage.join(tree.url_path(target, ext).trim_start_matches('/'))
}

/// A tmpfs mounted on a temp dir (root only), unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    mount_point: PathBuf,
}

impl Tmpfs {
    /// `Err(reason)` when this process cannot mount (not root, no tmpfs).
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let (dir, mount_point) = temp_dir("modstash-faults-mnt");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (root needed): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let fs = Tmpfs {
            _dir: dir,
            mount_point,
        };
        std::fs::create_dir(fs.storage()).unwrap();
        Ok(fs)
    }

    fn storage(&self) -> PathBuf {
        self.mount_point.join("storage")
    }

    fn storage_url(&self) -> String {
        format!("file://{}", self.storage().display())
    }

    /// `mount -o remount,{mode}`.
    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.mount_point)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }

    /// Writes a filler file (outside the storage dir) until at most `leave` bytes are free.
    fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self
            .mount_point
            .join(format!("filler-{}", rand::random::<u32>()));
        let mut file = std::fs::File::create(&path).unwrap();
        loop {
            let free = self.free();
            if free <= leave {
                return path;
            }
            let step = (free - leave).clamp(4096, 1 << 20) as usize;
            if file.write_all(&vec![0xA5u8; step]).is_err() {
                return path;
            }
        }
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.mount_point)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a replica killed a moment ago may still hold a file open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}
