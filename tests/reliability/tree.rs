//! The upstream tree the crash and soak scenarios fetch from: several generated modules of many
//! small versions, and the bytes every answer must have.

use std::path::PathBuf;

use crate::support::fleet::{GeneratedModule, temp_dir};

/// One `module@version` of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Index into [`Tree::modules`].
    pub module: usize,
    /// Canonical version.
    pub version: String,
}

/// A generated GOPROXY tree on disk; removed when dropped.
pub struct Tree {
    _guard: tempfile::TempDir,
    root: PathBuf,
    /// The modules, each with its versions.
    pub modules: Vec<GeneratedModule>,
}

impl Tree {
    /// `modules` modules `example.com/{name}/m{i}` of `per_module` versions each.
    pub fn generate(name: &str, modules: usize, per_module: usize, seed: u64) -> Tree {
        let (guard, root) = temp_dir(&format!("modstash-{name}-tree"));
        let modules = (0..modules)
            .map(|i| {
                let path = format!("example.com/{name}/m{i}");
                GeneratedModule::write(&root, &path, per_module, seed + 1000 * i as u64)
            })
            .collect();
        Tree {
            _guard: guard,
            root,
            modules,
        }
    }

    /// The directory to serve as an upstream.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Every version of every module, module by module.
    pub fn targets(&self) -> Vec<Target> {
        self.modules
            .iter()
            .enumerate()
            .flat_map(|(module, m)| {
                m.versions.iter().map(move |v| Target {
                    module,
                    version: v.clone(),
                })
            })
            .collect()
    }

    /// `/{module}/@v/{version}.{ext}`
    pub fn url_path(&self, target: &Target, ext: &str) -> String {
        self.modules[target.module].url_path(&target.version, ext)
    }

    /// `/{module}/@v/list`
    pub fn list_path(&self, module: usize) -> String {
        format!(
            "/{}/@v/list",
            crate::support::fixture_tree::escape_path(&self.modules[module].path)
        )
    }

    /// What upstream serves for `target`'s `.ext` file, and so what modstash must serve.
    pub fn expected(&self, target: &Target, ext: &str) -> Vec<u8> {
        let path = self.url_path(target, ext);
        std::fs::read(self.root.join(path.trim_start_matches('/'))).expect("fixture file")
    }
}
