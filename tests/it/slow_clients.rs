//! Idle and slowloris clients cannot starve others: connections are capped, and a client that
//! does not finish its request headers in time is cut off, freeing its slot.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{get, stack_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_and_others_are_served() {
    let s = stack_with(|settings| {
        settings.max_connections = 4;
        settings.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    // Fill every connection slot with a client that never finishes its headers.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(s.server.addr())
            .await
            .unwrap();
        stream
            .write_all(b"GET /example.com/shared/@v/list HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // A real client still gets its answer: the slow ones lose their slots after the timeout.
    let v = s.tree.version("example.com/shared", "v1.0.0");
    let answer = get(&s.server.url(&v.path("info"))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // And each slow client was disconnected (EOF or an error answer, never a hang).
    for mut stream in slow {
        let mut buf = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a slowloris connection was never closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_a_byte_is_closed() {
    // HTTP/1 vs HTTP/2 detection reads the first bytes before hyper's header timer starts, so
    // a silent client needs its own limit.
    let s = stack_with(|settings| {
        settings.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(s.server.addr())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "a silent connection was never closed");
    assert!(buf.is_empty(), "nothing was asked, so nothing is answered");
}
