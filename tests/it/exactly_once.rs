//! Fetch once: many concurrent cold requests for one module@version cause exactly one upstream request per file.

use std::time::Duration;

use futures::future::join_all;

use crate::support::{Fetched, client, send, stack};

const CLIENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_requests_fetch_each_file_once() {
    let s = stack().await;
    // Long enough that all 200 requests arrive while the first upstream fetch is still in flight.
    s.upstream.set_delay(Duration::from_millis(200));
    let v = s.tree.version("example.com/big", "v1.0.0");
    let http = client();
    let extensions = ["zip", "zip", "info", "mod"];

    let wave = |n: usize| {
        join_all((0..n).map(|i| {
            let ext = extensions[i % extensions.len()];
            let request = http.get(s.server.url(&v.path(ext)));
            async move { (ext, send(request).await) }
        }))
    };
    let check = |label: &str, answers: &[(&str, Fetched)]| {
        for (i, (ext, answer)) in answers.iter().enumerate() {
            assert_eq!(
                answer.status,
                200,
                "{label}: client {i} ({ext}): {}",
                answer.text()
            );
            match *ext {
                "zip" => assert!(
                    answer.body == v.zip,
                    "{label}: client {i} got {} zip bytes that differ from the fixture's {}",
                    answer.body.len(),
                    v.zip.len()
                ),
                "mod" => assert_eq!(answer.body, v.go_mod, "{label}: client {i} .mod"),
                _ => {
                    let info: serde_json::Value =
                        serde_json::from_slice(&answer.body).expect(".info is JSON");
                    assert_eq!(info["Version"], v.version.as_str(), "{label}: client {i}");
                    assert_eq!(info["Time"], v.time.as_str(), "{label}: client {i}");
                }
            }
        }
        // Clients asking for the same file must all get the same bytes.
        for ext in ["info", "mod", "zip"] {
            let mut bodies = answers
                .iter()
                .filter(|(e, _)| *e == ext)
                .map(|(_, a)| &a.body);
            if let Some(first) = bodies.next() {
                assert!(
                    bodies.all(|b| b == first),
                    "{label}: clients got different {ext} bodies"
                );
            }
        }
    };

    let first = wave(CLIENTS).await;
    let counts = s.upstream.counts();
    println!("upstream requests after the cold wave of {CLIENTS}: {counts:#?}");
    check("cold wave", &first);
    for ext in ["info", "mod", "zip"] {
        assert_eq!(
            s.upstream.count(&v.path(ext)),
            1,
            "upstream requests for {}: {counts:#?}",
            v.path(ext)
        );
    }
    let module_prefix = format!("/{}/", v.escaped_module);
    for (path, n) in &counts {
        assert!(
            !path.starts_with(&module_prefix) || *n == 1,
            "{path} was fetched {n} times"
        );
    }

    let total = s.upstream.total();
    let second = wave(CLIENTS).await;
    println!(
        "upstream requests after the warm wave: {:#?}",
        s.upstream.counts()
    );
    check("warm wave", &second);
    assert_eq!(
        s.upstream.total(),
        total,
        "a warm wave must be served from storage: {:#?}",
        s.upstream.counts()
    );
}
