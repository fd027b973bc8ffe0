//! The executor a server started in this process runs on, as `mqd` runs it:
//! an `async_executor::Executor` driven by threads of its own, which return
//! when this is dropped.

use std::sync::Arc;
use std::thread::JoinHandle;

use async_channel::Sender;
use async_executor::Executor;

/// An executor run by two threads until drop.
pub struct ServerThreads {
    /// What the servers are started on.
    pub ex: Arc<Executor<'static>>,
    /// Closing it makes the threads return.
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerThreads {
    /// Starts the two threads.
    pub fn start() -> ServerThreads {
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let threads = (0..2)
            .map(|_| {
                let ex = ex.clone();
                let stopped = stopped.clone();
                std::thread::spawn(move || {
                    // Returns when `stop` closes.
                    let _ = async_io::block_on(ex.run(stopped.recv()));
                })
            })
            .collect();
        ServerThreads {
            ex,
            stop: Some(stop),
            threads,
        }
    }
}

impl Drop for ServerThreads {
    fn drop(&mut self) {
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
