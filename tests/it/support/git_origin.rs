//! Local git repositories that the go command reaches as `https://git.corp.example.com/...`
//! through a `GIT_CONFIG_GLOBAL` whose `url.<file:///...>.insteadOf` rewrites the fake host, so
//! `direct` fetches run the real go command and git without any network.
//!
//! Module paths carry the `.git` qualifier (`git.corp.example.com/team/repo.git`), which tells
//! the go command the VCS without a `?go-get=1` lookup that would need a real host.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fake host every repository hides behind.
pub const HOST: &str = "git.corp.example.com";

/// A directory of repositories plus the git configuration that reaches them.
#[derive(Debug)]
pub struct GitOrigin {
    dir: tempfile::TempDir,
}

impl GitOrigin {
    /// Creates the repositories:
    /// - `team/repo.git`: tags v1.0.0 and v1.1.0, then one untagged commit on `master`;
    /// - `team/untagged.git`: one commit, no tags;
    /// - `team/mono.git/sub`: a module in a subdirectory, tagged `sub/v1.0.0`;
    /// - `team/major.git/v2`: a major version 2 module, tagged v2.0.0.
    pub fn create() -> GitOrigin {
        let dir = tempfile::Builder::new()
            .prefix("modstash-git-")
            .tempdir()
            .expect("create git origin dir");
        let origin = GitOrigin { dir };
        let repo = origin.repo("team/repo");
        write(&repo, "go.mod", &go_mod("team/repo.git"));
        write(&repo, "repo.go", "package repo\n\nconst Version = 1\n");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "first"]);
        git(&repo, &["tag", "v1.0.0"]);
        write(&repo, "repo.go", "package repo\n\nconst Version = 2\n");
        git(&repo, &["commit", "-qam", "second"]);
        git(&repo, &["tag", "v1.1.0"]);
        write(&repo, "repo.go", "package repo\n\nconst Version = 3\n");
        git(&repo, &["commit", "-qam", "untagged"]);

        let untagged = origin.repo("team/untagged");
        write(&untagged, "go.mod", &go_mod("team/untagged.git"));
        write(&untagged, "u.go", "package untagged\n");
        git(&untagged, &["add", "-A"]);
        git(&untagged, &["commit", "-qm", "only"]);

        let mono = origin.repo("team/mono");
        write(&mono, "go.mod", &go_mod("team/mono.git"));
        write(&mono, "sub/go.mod", &go_mod("team/mono.git/sub"));
        write(&mono, "sub/sub.go", "package sub\n");
        git(&mono, &["add", "-A"]);
        git(&mono, &["commit", "-qm", "mono"]);
        git(&mono, &["tag", "sub/v1.0.0"]);

        let major = origin.repo("team/major");
        write(&major, "go.mod", &go_mod("team/major.git/v2"));
        write(&major, "major.go", "package major\n");
        git(&major, &["add", "-A"]);
        git(&major, &["commit", "-qm", "v2"]);
        git(&major, &["tag", "v2.0.0"]);

        let config = format!(
            "[url \"file://{}/\"]\n\tinsteadOf = https://{HOST}/\n[protocol \"file\"]\n\tallow = always\n",
            origin.repos().display()
        );
        std::fs::write(origin.gitconfig(), config).expect("write gitconfig");
        origin
    }

    fn repos(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    fn repo(&self, name: &str) -> PathBuf {
        let path = self.repos().join(name);
        std::fs::create_dir_all(&path).expect("create repo dir");
        git(&path, &["init", "-q", "-b", "master"]);
        git(&path, &["config", "user.email", "dev@corp.example.com"]);
        git(&path, &["config", "user.name", "dev"]);
        path
    }

    /// The git configuration to hand the go command as `GIT_CONFIG_GLOBAL`.
    pub fn gitconfig(&self) -> PathBuf {
        self.dir.path().join("gitconfig")
    }

    /// The full hash of `rev` in `repo` (e.g. `team/repo`, `HEAD`).
    pub fn rev(&self, repo: &str, rev: &str) -> String {
        let out = Command::new("git")
            .args(["rev-parse", rev])
            .current_dir(self.repos().join(repo))
            .output()
            .expect("run git rev-parse");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// True when git can be run (the tests that need it skip otherwise, unless required).
pub fn git_available() -> bool {
    Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn go_mod(rest: &str) -> String {
    format!("module {HOST}/{rest}\n\ngo 1.21\n")
}

fn write(repo: &Path, file: &str, text: &str) {
    let path = repo.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dir in repo");
    }
    std::fs::write(path, text).expect("write file in repo");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
