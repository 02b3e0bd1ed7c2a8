//! What a watch sees of one object over a test, for checks on the whole
//! path (each step entered once, weights only moving forward) rather than
//! on where it ended.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// Every distinct value `read` finds in the object, in the order a watch
/// sees them, until dropped.
pub struct Recorded<T> {
    seen: Arc<Mutex<Vec<T>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: Clone + PartialEq + Send + 'static> Recorded<T> {
    pub fn watch<K>(api: Api<K>, name: &str, read: impl Fn(K) -> Option<T> + Send + 'static) -> Self
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, config).default_backoff().applied_objects().boxed();
            while let Some(next) = stream.next().await {
                let Some(value) = next.ok().and_then(&read) else {
                    continue;
                };
                let mut seen = sink.lock().expect("lock");
                if seen.last() != Some(&value) {
                    seen.push(value);
                }
            }
        });
        Recorded { seen, task }
    }

    /// What was seen so far.
    pub fn snapshot(&self) -> Vec<T> {
        self.seen.lock().expect("lock").clone()
    }
}

impl<T> Drop for Recorded<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
