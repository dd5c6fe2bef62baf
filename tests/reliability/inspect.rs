//! The real `modstash verify` CLI, run on a storage the scenarios left behind.

/// `modstash verify --json --storage URL` (default grace: young orphans count as in progress);
/// the parsed report. Its exit status is in the report (`problems_remaining`), not checked here.
pub fn verify(storage_url: &str) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modstash"))
        .args(["verify", "--json", "--storage", storage_url])
        .output()
        .expect("run modstash verify");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "modstash verify printed no JSON report ({e}): status {}, stderr {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
