//! `/metrics` after known traffic (exact deltas where the traffic fixes them), and the request
//! log line of the real binary.

use std::time::Duration;

use crate::support::fixture_tree::FixtureTree;
use crate::support::fleet::{Replica, temp_dir};
use crate::support::upstream::Upstream;
use crate::support::{get, stack};

/// The value of one series (`name{labels}`) in an OpenMetrics text, 0 when absent.
fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

#[tokio::test]
async fn counters_move_with_known_traffic() {
    let s = stack().await;
    let v = s.tree.version("example.com/hello", "v1.2.0");
    let info = s.server.url(&v.path("info"));
    let first = get(&info).await;
    assert_eq!(first.status, 200);
    assert_eq!(get(&info).await.status, 200);
    assert_eq!(get(&s.server.url(&v.path("mod"))).await.status, 200);
    let missing = get(&s.server.url("/example.com/nope/@v/v1.0.0.info")).await;
    assert_eq!(missing.status, 404);

    let scraped = get(&s.server.url("/metrics")).await;
    assert_eq!(scraped.status, 200);
    assert!(
        scraped
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        scraped.header("content-type")
    );
    let m = scraped.text();
    let series = |s: &str| value(&m, s);
    assert_eq!(
        series("modstash_http_requests_total{route=\"info\",status=\"200\"}"),
        2,
        "{m}"
    );
    assert_eq!(
        series("modstash_http_requests_total{route=\"mod\",status=\"200\"}"),
        1
    );
    assert_eq!(
        series("modstash_http_requests_total{route=\"info\",status=\"404\"}"),
        1
    );
    assert_eq!(
        series("modstash_http_response_bytes_total{route=\"info\"}"),
        (2 * v.info.len() + missing.body.len()) as u64
    );
    // One fetch (the first .info) for hello, one for the missing module; then two storage hits.
    assert_eq!(series("modstash_stash_checks_total{result=\"fetch\"}"), 2);
    assert_eq!(series("modstash_stash_checks_total{result=\"stored\"}"), 2);
    assert_eq!(series("modstash_flight_waiters_total"), 0);
    assert_eq!(series("modstash_upstream_fetches_total{result=\"ok\"}"), 1);
    assert_eq!(
        series("modstash_upstream_fetches_total{result=\"error\"}"),
        1
    );
    assert_eq!(
        series("modstash_upstream_bytes_total"),
        (v.info.len() + v.go_mod.len() + v.zip.len()) as u64
    );
    assert_eq!(series("modstash_lease_acquisitions_total"), 2);
    assert_eq!(series("modstash_lease_takeovers_total"), 0);
    assert_eq!(series("modstash_storage_errors_total"), 0);

    // The scrape itself is counted by the next one.
    let again = get(&s.server.url("/metrics")).await.text();
    assert_eq!(
        value(
            &again,
            "modstash_http_requests_total{route=\"other\",status=\"200\"}"
        ),
        1,
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_one_line_per_request() {
    let upstream = Upstream::start().await;
    let (_dir, storage) = temp_dir("modstash-log-");
    let replica = Replica::start(
        &[
            "--log-format".into(),
            "json".into(),
            "--storage".into(),
            format!("file://{}", storage.display()),
            "--upstream".into(),
            upstream.url(),
        ],
        &[],
    )
    .await;
    let path = "/example.com/hello/@v/v1.2.0.mod";
    assert_eq!(get(&format!("{}{path}", replica.base)).await.status, 200);
    // The line is written before the answer leaves, but stderr is a file read by another
    // process: poll it, with a hang guard only.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        let log = std::fs::read_to_string(&replica.log).unwrap_or_default();
        let found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["message"] == "request" && l["span"]["path"] == path);
        if let Some(line) = found {
            break line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request line in:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["span"]["method"], "GET", "{line}");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    let go_mod = FixtureTree::shared()
        .version("example.com/hello", "v1.2.0")
        .go_mod
        .len();
    assert_eq!(line["fields"]["bytes"], go_mod, "{line}");
    assert!(line["fields"]["latency_ms"].as_f64().is_some(), "{line}");
}
