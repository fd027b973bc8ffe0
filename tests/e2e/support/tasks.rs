//! Running a test's own futures side by side.

use std::future::Future;

use async_executor::LocalExecutor;

/// Runs every future concurrently on the calling thread and returns their
/// outputs in order. The futures may borrow from the test.
pub async fn concurrently<T, F>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T>,
{
    let ex = LocalExecutor::new();
    let tasks: Vec<_> = futures.into_iter().map(|f| ex.spawn(f)).collect();
    ex.run(async {
        let mut outputs = Vec::with_capacity(tasks.len());
        for task in tasks {
            outputs.push(task.await);
        }
        outputs
    })
    .await
}
