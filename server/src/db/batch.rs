//! Coalescing concurrent database calls into one. Callers hand in one item each and wait for
//! their own answer; a task takes whatever has gathered since its last call (up to a maximum),
//! runs one call for all of it and answers each caller. Under load one round trip (and one
//! commit) covers many callers; alone, a caller's item goes at once: nothing waits for a batch to
//! fill.

use std::future::Future;
use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

type Item<I, O> = (I, oneshot::Sender<Result<O, String>>);

/// One coalescing queue (its task starts on first use, on the caller's runtime, and stops when
/// the batcher is dropped).
#[derive(Debug)]
pub struct Batcher<I, O> {
    max: usize,
    queue: OnceLock<mpsc::UnboundedSender<Item<I, O>>>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// A batcher that passes at most `max` items to one call.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            queue: OnceLock::new(),
        }
    }

    /// Queues `item` and waits for its answer. `work` runs a batch and must answer every item in
    /// order (one output per input); it is taken from the first call only.
    pub async fn call<W, Fut>(&self, item: I, work: W) -> Result<O, String>
    where
        W: FnMut(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, String>> + Send + 'static,
    {
        let max = self.max;
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(run(receiver, max, work));
            sender
        });
        let (reply, answer) = oneshot::channel();
        queue
            .send((item, reply))
            .map_err(|_| "the batch writer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the batch writer dropped an item".to_owned())?
    }
}

async fn run<I, O, W, Fut>(
    mut receiver: mpsc::UnboundedReceiver<Item<I, O>>,
    max: usize,
    mut work: W,
) where
    W: FnMut(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, String>>,
{
    let mut batch: Vec<Item<I, O>> = Vec::with_capacity(max);
    while receiver.recv_many(&mut batch, max).await > 0 {
        let (items, replies): (Vec<I>, Vec<_>) = batch.drain(..).unzip();
        let count = items.len();
        match work(items).await {
            Ok(outputs) if outputs.len() == count => {
                for (reply, output) in replies.into_iter().zip(outputs) {
                    let _ = reply.send(Ok(output));
                }
            }
            Ok(outputs) => {
                let reason = format!("a batch of {count} gave {} answers", outputs.len());
                for reply in replies {
                    let _ = reply.send(Err(reason.clone()));
                }
            }
            Err(reason) => {
                for reply in replies {
                    let _ = reply.send(Err(reason.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_calls_and_each_gets_its_own_answer() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(16));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..100u32 {
            let (batcher, calls) = (batcher.clone(), calls.clone());
            tasks.spawn(async move {
                let answer = batcher
                    .call(n, move |items: Vec<u32>| {
                        let calls = calls.clone();
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            Ok(items.into_iter().map(|i| i * 2).collect())
                        }
                    })
                    .await;
                (n, answer)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (n, answer) = joined.unwrap();
            assert_eq!(answer, Ok(n * 2));
        }
        let calls = calls.load(Ordering::SeqCst);
        assert!((7..100).contains(&calls), "{calls} calls for 100 items");
    }

    #[tokio::test]
    async fn a_failed_or_short_batch_fails_every_caller_in_it() {
        let batcher = Batcher::<u32, u32>::new(4);
        let failed = batcher
            .call(1, |_items: Vec<u32>| async {
                Err("database: down".to_owned())
            })
            .await;
        assert_eq!(failed, Err("database: down".to_owned()));
        let short = Batcher::<u32, u32>::new(4);
        let answer = short
            .call(1, |_items: Vec<u32>| async { Ok(Vec::new()) })
            .await;
        assert_eq!(answer, Err("a batch of 1 gave 0 answers".to_owned()));
    }
}
