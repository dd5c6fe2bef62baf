//! Client authentication (users and tokens files) with the real go command, and upstream
//! credentials (per-host tokens, netrc) against a fixture upstream that requires them.

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::support::tls::TlsFront;
use crate::support::{client, get, gocmd, send, stack_with};

const PASSWORD: &str = "correct-horse-battery";
const TOKEN: &str = "ci-token-0123456789";

/// Writes a users file (alice, bcrypt) and a tokens file (ci) into `dir`.
fn credential_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let users = dir.join("users");
    let tokens = dir.join("tokens");
    // Cost 4: the lowest bcrypt allows, so the test does not spend its time hashing.
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(&users, format!("# go users\nalice:{hash}\n")).unwrap();
    let digest = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    std::fs::write(&tokens, format!("ci:sha256:{digest}\n")).unwrap();
    (users, tokens)
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn requests_need_credentials_except_probes() {
    let dir = tempfile::tempdir().unwrap();
    let (users, tokens) = credential_files(dir.path());
    let s = stack_with(|settings| {
        settings.auth_users = Some(users);
        settings.auth_tokens = Some(tokens);
    })
    .await;
    let info = s.tree.version("example.com/hello", "v1.2.0").path("info");
    let url = s.server.url(&info);

    let refused = get(&url).await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Basic realm=\"modstash\"")
    );
    for wrong in [
        basic("alice", "wrong"),
        basic("mallory", PASSWORD),
        "Bearer not-the-token".to_owned(),
    ] {
        let answer = send(client().get(&url).header("authorization", &wrong)).await;
        assert_eq!(answer.status, 401, "{wrong}");
    }
    assert_eq!(
        s.upstream.total(),
        0,
        "refused requests must not reach upstream"
    );
    for good in [basic("alice", PASSWORD), format!("Bearer {TOKEN}")] {
        let answer = send(client().get(&url).header("authorization", &good)).await;
        assert_eq!(answer.status, 200, "{good}: {}", answer.text());
    }
    for open in ["/healthz", "/readyz"] {
        assert_eq!(get(&s.server.url(open)).await.status, 200, "{open}");
    }
    assert_eq!(get(&s.server.url("/metrics")).await.status, 401);
    let scraped = send(
        client()
            .get(s.server.url("/metrics"))
            .header("authorization", format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(scraped.status, 200);
}

#[tokio::test]
async fn metrics_can_be_public() {
    let dir = tempfile::tempdir().unwrap();
    let (users, _) = credential_files(dir.path());
    let s = stack_with(|settings| {
        settings.auth_users = Some(users);
        settings.metrics_public = true;
    })
    .await;
    assert_eq!(get(&s.server.url("/metrics")).await.status, 200);
    assert_eq!(get(&s.server.url("/catalog")).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_downloads_with_credentials_and_fails_without() {
    let Some(go) = gocmd::go_or_skip("auth::go_downloads_with_credentials_and_fails_without")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (users, _) = credential_files(dir.path());
    let s = stack_with(|settings| settings.auth_users = Some(users)).await;
    let target = "example.com/hello@v1.2.0";

    // The go command sends credentials only over HTTPS.
    let tls = TlsFront::start(s.server.addr()).await;
    let sandbox = |goproxy: &str| {
        let mut sandbox = go.sandbox(goproxy);
        sandbox.set_env("SSL_CERT_FILE", tls.ca_file.to_str().unwrap());
        sandbox
    };
    let expected = s.tree.version("example.com/hello", "v1.2.0").h1.clone();

    let anonymous = sandbox(&tls.base_url());
    let out = anonymous.run(&["mod", "download", "-json", target]).await;
    assert!(!out.status.success(), "downloaded without credentials");
    assert!(
        out.stdout.contains("401 Unauthorized"),
        "the go command should report the 401:\n{}\n{}",
        out.stdout,
        out.stderr
    );

    // Credentials from a netrc file (NETRC), the go command's usual way.
    let mut with_netrc = sandbox(&tls.base_url());
    let netrc = with_netrc.root_dir().join("netrc");
    std::fs::write(
        &netrc,
        // The go command matches netrc machines against host:port.
        format!("machine {} login alice password {PASSWORD}\n", tls.addr),
    )
    .unwrap();
    with_netrc.set_env("NETRC", netrc.to_str().unwrap());
    let downloads = with_netrc.download_json(&[target]).await;
    assert_eq!(downloads[0].sum.as_deref(), Some(expected.as_str()));

    // Credentials in the GOPROXY URL.
    let with_url = sandbox(&format!("https://alice:{PASSWORD}@{}", tls.addr));
    let downloads = with_url.download_json(&[target]).await;
    assert_eq!(downloads[0].sum.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn upstream_tokens_and_netrc_reach_upstream_and_are_never_shown() {
    let probe = "example.com/hello";
    // A bearer token for the upstream's host.
    let s = stack_with(|_| {}).await;
    s.upstream
        .require_authorization(Some("Bearer up-secret-token"));
    let info = s.tree.version(probe, "v1.2.0").path("info");
    let refused = get(&s.server.url(&info)).await;
    assert_eq!(refused.status, 502, "{}", refused.text());
    drop(s);

    let s = stack_with(|settings| {
        settings.upstream_tokens = "127.0.0.1=up-secret-token".parse().unwrap();
    })
    .await;
    s.upstream
        .require_authorization(Some("Bearer up-secret-token"));
    let ok = get(&s.server.url(&info)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());

    // A netrc login for the upstream's host; a wrong one is refused upstream and the 502 names
    // neither the login nor the password.
    let dir = tempfile::tempdir().unwrap();
    let netrc = dir.path().join("netrc");
    std::fs::write(
        &netrc,
        "machine 127.0.0.1 login bob password up-secret-pw\n",
    )
    .unwrap();
    let s = stack_with(|settings| settings.upstream_netrc = Some(netrc.clone())).await;
    s.upstream
        .require_authorization(Some(&basic("bob", "up-secret-pw")));
    let ok = get(&s.server.url(&info)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    s.upstream
        .require_authorization(Some(&basic("bob", "other")));
    let zip = s.tree.version(probe, "v1.1.0").path("info");
    let refused = get(&s.server.url(&zip)).await;
    assert_eq!(refused.status, 502);
    assert!(!refused.text().contains("up-secret"), "{}", refused.text());
}
