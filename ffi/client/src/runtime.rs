//! The executor and threads a client instance (or a lone connection) owns,
//! so that the library can be stopped: there is no global executor, every
//! task runs on its owner's executor, and [`Runtime::stop`] ends its threads.
//!
//! Stopping from one of the runtime's own threads (a callback that shuts the
//! client down, the last handle dropped inside a task) cannot join that
//! thread, and joining the others from there could wait on a callback that
//! waits on the caller; so then no thread is joined: each one leaves its run
//! loop after the task it is polling and exits on its own. From any other
//! thread `stop` returns once every thread has exited.
//!
//! Two threads the library uses are not a runtime's: `async-io`'s reactor
//! thread (one per process, parked while a runtime thread drives the
//! reactor) and the `blocking` pool's threads (listener calls, file
//! writes), which exit after half a second of idleness.
//!
//! [`block_on`] is how a thread outside every runtime (an application's,
//! a C caller's) waits for the client: it parks, and the runtime's threads
//! wake it.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};

use async_channel::{Receiver, Sender};
use async_executor::{Executor, Task};

thread_local! {
    /// Set while [`Runtime::start_detached`] runs a first poll here.
    static POLLED_INLINE: Cell<bool> = const { Cell::new(false) };
}

/// An executor and the named threads that run it.
pub(crate) struct Runtime {
    /// Taken at stop: spawning then fails, and once the threads are gone the
    /// last reference drops the executor, which drops the tasks left on it
    /// (closing their sockets, releasing what they hold).
    executor: Mutex<Option<Arc<Executor<'static>>>>,
    /// Closed at stop; each thread's run loop ends when it sees that.
    stop: Sender<()>,
    /// The threads, joined at stop (unless stop runs on one of them).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Runtime {
    /// Starts `threads` threads (at least one) named `<name>-<i>`.
    pub(crate) fn start(name: &str, threads: usize) -> std::io::Result<Runtime> {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let runtime = Runtime {
            executor: Mutex::new(Some(executor.clone())),
            stop,
            threads: Mutex::new(Vec::new()),
        };
        for i in 0..threads.max(1) {
            let executor = executor.clone();
            let stopped: Receiver<()> = stopped.clone();
            // On failure the threads already started stop as `runtime` drops.
            let handle = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    // Nothing is ever sent: `recv` ends when `stop` closes.
                    async_io::block_on(executor.run(stopped.recv())).ok();
                })?;
            runtime
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(handle);
        }
        Ok(runtime)
    }

    /// Runs `future` on the executor; `None` once stopped (the future is
    /// dropped unrun). Dropping the task cancels it; `detach` lets it finish.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<Task<T>> {
        let executor = self
            .executor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        Some(executor.spawn(future))
    }

    /// Runs `future` to its end on the executor, unless stopped first.
    pub(crate) fn spawn_detached(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Some(task) = self.spawn(future) {
            task.detach();
        }
    }

    /// [`spawn_detached`](Self::spawn_detached), but the first poll runs
    /// here, on the calling thread: a send from a foreign thread (a C or Go
    /// caller's) then encodes and queues its request at once instead of
    /// waking an executor thread to do it, and the executor takes over
    /// only when the future is woken (by its response). Once stopped, the
    /// future is dropped unrun, as by `spawn_detached`.
    pub(crate) fn start_detached(&self, future: impl Future<Output = ()> + Send + 'static) {
        let Some(executor) = self
            .executor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        // Weak: a woken future must not keep a stopped executor alive; when
        // it is gone, dropping the runnable drops the future.
        let executor = Arc::downgrade(&executor);
        let schedule = move |runnable: async_task::Runnable| {
            if let Some(executor) = executor.upgrade() {
                executor
                    .spawn(async move {
                        runnable.run();
                    })
                    .detach();
            }
        };
        let (runnable, task) = async_task::spawn(future, schedule);
        task.detach();
        let outer = POLLED_INLINE.replace(true);
        runnable.run();
        POLLED_INLINE.set(outer);
    }

    /// Whether the calling thread is running a future's first poll for
    /// [`start_detached`](Self::start_detached): the caller's thread, where
    /// application callbacks must not run (the caller may be about to do
    /// what its callback waits for).
    pub(crate) fn polled_inline() -> bool {
        POLLED_INLINE.get()
    }

    /// Whether the calling thread is one of this runtime's.
    fn on_own_thread(threads: &[JoinHandle<()>]) -> bool {
        let me = thread::current().id();
        threads.iter().any(|t| t.thread().id() == me)
    }

    /// Stops the threads: joins them, or, on one of them, lets them exit by
    /// themselves (see the module doc). Idempotent.
    pub(crate) fn stop(&self) {
        self.stop.close();
        let executor = self
            .executor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        if !Self::on_own_thread(&threads) {
            for t in threads {
                // A thread ends by returning; a panic there was a task's, and
                // tasks catch their panics, so there is nothing to report.
                let _ = t.join();
            }
        }
        // With every thread joined this is the last reference: the tasks
        // left on the executor are dropped here, on the caller's thread.
        drop(executor);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `future` to its end on the calling thread, which sleeps
/// (`std::thread::park`) whenever the future waits, until a waker unparks it.
///
/// What the client's futures wait for (sockets, timers, other tasks) is
/// driven by the client instance's threads and async-io's thread, so the
/// caller's thread only sleeps and wakes: one futex wait and one wake at
/// most per wait. `async_io::block_on` would also have the caller's thread
/// take turns at driving the reactor, so that waking it means interrupting
/// `epoll_wait`, and it wakes async-io's thread at every return: two
/// context switches per call that a synchronous send through the C ABI
/// paid on every message.
///
/// Not for a runtime's own threads (a task that blocks its thread stalls
/// the other tasks there). Calls may nest.
pub fn block_on<F: Future>(future: F) -> F::Output {
    /// Unparks the thread that made it.
    struct Unparker(Thread);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    thread_local! {
        /// This thread's waker, made once.
        static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
        /// How many `block_on` calls this thread is inside.
        static DEPTH: Cell<usize> = const { Cell::new(0) };
    }
    let run = |waker: &Waker| {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(waker);
        let depth = DEPTH.with(|d| d.replace(d.get() + 1));
        let output = loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                break output;
            }
            // A stale unpark (from an earlier call's wake) only costs a
            // second poll.
            thread::park();
        };
        DEPTH.with(|d| d.set(depth));
        if depth > 0 {
            // Nested: a wake meant for the outer call may have been taken
            // by this call's park; have the outer call poll again.
            thread::current().unpark();
        }
        output
    };
    // `try_with` fails only while the thread's locals are being destroyed.
    match WAKER.try_with(Waker::clone) {
        Ok(waker) => run(&waker),
        Err(_) => run(&Waker::from(Arc::new(Unparker(thread::current())))),
    }
}
