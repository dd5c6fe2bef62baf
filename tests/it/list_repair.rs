//! A crash between a version's commit and its `@v/list` merge leaves the version committed but
//! unlisted; the next process that finds it committed puts it in the list.

use crate::support::{get, server, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_version_missing_from_the_list_is_listed_when_next_found() {
    let mut s = stack().await;
    let v = s.tree.version("example.com/big", "v1.0.0");
    assert_eq!(get(&s.server.url(&v.path("info"))).await.status, 200);
    s.server.shutdown().await.unwrap();
    // What a SIGKILL right after the `.info` write leaves: committed, no list entry.
    let dir = s.server.storage_dir().to_owned();
    let list = dir.join(v.key("info")).with_file_name("list");
    std::fs::remove_file(&list).unwrap();

    let restarted = server::start_with("off", |settings| {
        settings.storage = format!("file://{}", dir.display()).parse().unwrap();
    })
    .await;
    let info = get(&restarted.url(&v.path("info"))).await;
    assert_eq!(info.status, 200, "{}", info.text());
    let listed = std::fs::read_to_string(&list).unwrap_or_default();
    assert_eq!(
        listed, "v1.0.0\n",
        "the stored list after the version was found committed"
    );
    let served = get(&restarted.url(&s.tree.module("example.com/big").list_path())).await;
    assert_eq!(served.text(), "v1.0.0\n");
}
