//! The pace of a blob transfer: when it last moved a chunk. A transfer is bounded by its pauses, never
//! by its whole length (see [`super::timeouts`]): the HTTP client's own read timeout cannot do that,
//! since it runs from the start of a request to its answer, an upload's body included.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};

/// The time of the last chunk a transfer moved, shared by the stream that moves it and the watch.
#[derive(Clone, Debug)]
pub struct Pace {
    last: Arc<Mutex<Instant>>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            last: Arc::new(Mutex::new(Instant::now())),
        }
    }
}

impl Pace {
    /// Notes that the transfer moved.
    pub fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `stream`, noting each chunk it yields (a chunk an upload takes, or a download receives).
    pub fn track<S: Stream>(&self, stream: S) -> impl Stream<Item = S::Item> {
        let pace = self.clone();
        stream.inspect(move |_| pace.touch())
    }

    /// Resolves once the transfer has not moved for `bound`.
    pub async fn stalled(&self, bound: Duration) {
        loop {
            let due = self.last() + bound;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_moving_transfer_is_not_stalled_a_paused_one_is() {
        let pace = Pace::default();
        let bound = Duration::from_millis(150);
        let mover = {
            let pace = pace.clone();
            async move {
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    pace.touch();
                }
            }
        };
        // 300 ms of moving, longer than the bound: not stalled.
        tokio::select! {
            _ = mover => {}
            _ = pace.stalled(bound) => panic!("stalled while moving"),
        }
        let started = Instant::now();
        pace.stalled(bound).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
