//! Live downloads: while the leader spools a zip from upstream, waiting clients stream it from the
//! growing spool file, so nobody waits for the whole zip before the first byte.
//!
//! The spool file is the shared buffer (memory stays flat however many clients follow). The last
//! byte is held back until the zip passed its checks: a client never receives a complete bad zip,
//! only a broken transfer.

use std::io::SeekFrom;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

/// Read size when following a spool file.
const FOLLOW_READ_SIZE: usize = 256 * 1024;

/// How far the leader got with the spool file.
#[derive(Debug, Clone, Default)]
pub struct SpoolState {
    /// Bytes written and flushed.
    pub written: u64,
    /// `Some(true)` once the zip passed its checks; `Some(false)` when it failed.
    pub verdict: Option<bool>,
}

/// A zip being downloaded by a flight leader.
#[derive(Debug)]
pub struct LiveZip {
    /// The spool file; kept alive while any follower reads it.
    pub file: Arc<tempfile::TempPath>,
    /// Upstream's `Content-Length`, if it sent one.
    pub content_length: Option<u64>,
    /// Progress of the spool writer. The writer dropping without a verdict means failure.
    pub state: watch::Receiver<SpoolState>,
}

/// Where a flight announces its live zip to the callers that joined it.
#[derive(Debug)]
pub struct LiveSlot(watch::Sender<Option<Arc<LiveZip>>>);

impl Default for LiveSlot {
    fn default() -> Self {
        LiveSlot(watch::Sender::new(None))
    }
}

impl LiveSlot {
    /// Announces the live zip.
    pub fn publish(&self, live: Arc<LiveZip>) {
        self.0.send_replace(Some(live));
    }

    /// Follows announcements.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<LiveZip>>> {
        self.0.subscribe()
    }
}

/// The error a follower's stream ends with when the leader's download fails.
fn aborted() -> std::io::Error {
    std::io::Error::other("upstream download failed or the zip was refused; transfer aborted")
}

struct Follower {
    live: Arc<LiveZip>,
    state: watch::Receiver<SpoolState>,
    file: Option<tokio::fs::File>,
    pos: u64,
    done: bool,
}

impl Follower {
    async fn read_next(&mut self, want: usize) -> Result<Bytes, std::io::Error> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file = tokio::fs::File::open(&*self.live.file).await?;
                file.seek(SeekFrom::Start(self.pos)).await?;
                self.file.insert(file)
            }
        };
        let mut buf = vec![0u8; want];
        file.read_exact(&mut buf).await?;
        Ok(Bytes::from(buf))
    }
}

/// Streams the live zip from its first byte, following the writer until the verdict.
pub fn follow(live: Arc<LiveZip>) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let follower = Follower {
        state: live.state.clone(),
        live,
        file: None,
        pos: 0,
        done: false,
    };
    futures::stream::unfold(follower, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            let snapshot = f.state.borrow_and_update().clone();
            // Everything but the last byte may go out before the verdict; the last waits for it.
            let sendable = match snapshot.verdict {
                Some(true) => snapshot.written,
                Some(false) => {
                    f.done = true;
                    return Some((Err(aborted()), f));
                }
                None => snapshot.written.saturating_sub(1),
            };
            if f.pos < sendable {
                let want = (sendable - f.pos).min(FOLLOW_READ_SIZE as u64) as usize;
                return match f.read_next(want).await {
                    Ok(bytes) => {
                        f.pos += bytes.len() as u64;
                        Some((Ok(bytes), f))
                    }
                    Err(e) => {
                        f.done = true;
                        Some((Err(e), f))
                    }
                };
            }
            if snapshot.verdict == Some(true) {
                return None;
            }
            if f.state.changed().await.is_err() {
                // The writer is gone: a verdict may have been its last message.
                if f.state.borrow().verdict == Some(true) {
                    continue;
                }
                f.done = true;
                return Some((Err(aborted()), f));
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn live_zip() -> (Arc<LiveZip>, std::fs::File, watch::Sender<SpoolState>) {
        let (file, path) = tempfile::NamedTempFile::new().unwrap().into_parts();
        let (tx, rx) = watch::channel(SpoolState::default());
        let live = Arc::new(LiveZip {
            file: Arc::new(path),
            content_length: None,
            state: rx,
        });
        (live, file, tx)
    }

    #[tokio::test]
    async fn follower_gets_bytes_as_written_but_the_last_only_after_acceptance() {
        let (live, mut file, tx) = live_zip();
        let mut stream = follow(live);
        file.write_all(b"hello").unwrap();
        tx.send_modify(|s| s.written = 5);
        // Four bytes may go before the verdict.
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Bytes::from_static(b"hell")
        );
        file.write_all(b" world").unwrap();
        tx.send_modify(|s| s.written = 11);
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Bytes::from_static(b"o worl")
        );
        tx.send_modify(|s| s.verdict = Some(true));
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Bytes::from_static(b"d")
        );
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_refused_or_abandoned_zip_aborts_the_follower_before_its_last_byte() {
        for refuse_explicitly in [true, false] {
            let (live, mut file, tx) = live_zip();
            let mut stream = follow(live);
            file.write_all(b"bad zip").unwrap();
            tx.send_modify(|s| s.written = 7);
            let mut got = Vec::new();
            got.extend_from_slice(&stream.next().await.unwrap().unwrap());
            if refuse_explicitly {
                tx.send_modify(|s| s.verdict = Some(false));
            } else {
                drop(tx);
            }
            assert!(stream.next().await.unwrap().is_err());
            assert!(stream.next().await.is_none());
            assert_eq!(
                got, b"bad zi",
                "the complete bad zip must never be delivered"
            );
        }
    }
}
