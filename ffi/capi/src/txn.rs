//! The transactional producer in two phases, and check-backs answered from
//! the application's own thread.
//!
//! `mq_txn_producer_send_half` stores a half message and returns an
//! `mq_txn_t`; the application runs its local transaction and ends it with
//! `mq_txn_end` (commit, rollback or unknown). When the broker checks a half
//! message whose outcome never came, the core's listener is the
//! [`CheckBridge`]: it queues an `mq_txn_check_t` for
//! `mq_txn_producer_poll_check` and waits (on the core's blocking pool) for
//! `mq_txn_check_answer`, falling back to UNKNOWN (the broker asks again
//! later) after `txn_check_timeout_ms`, when the check is freed unanswered,
//! or once the producer is closing.

use std::sync::Arc;
use std::time::Duration;

use async_channel::{bounded, Receiver, Sender};
use mq_client::{
    Message, MessageExt, SendResult, Transaction, TransactionListener, TransactionProducer,
    TransactionState,
};

use crate::client::{block_on, instance, next, timeout, Gate};
use crate::config::{mq_config_t, Extra};
use crate::ffi::{arg, choice, handle, ok, take, Out, Poison, Poisonable};
use crate::message::mq_message_t;
use crate::reply::{reply, Closing, Replier};
use crate::send_result::mq_send_result_t;
use crate::status::{mq_status_t, Error};

/// Commit the half message: consumers see it.
pub const MQ_TXN_COMMIT: i32 = 0;
/// Roll the half message back: it is dropped.
pub const MQ_TXN_ROLLBACK: i32 = 1;
/// No outcome yet: the broker will check back later.
pub const MQ_TXN_UNKNOWN: i32 = 2;

/// Check-backs waiting for a poll at most; more are answered UNKNOWN at
/// once (the broker asks again).
const PENDING_CHECKS: usize = 256;

fn txn_state(value: i32) -> Result<TransactionState, Error> {
    choice(
        value,
        &[
            (MQ_TXN_COMMIT, TransactionState::Commit),
            (MQ_TXN_ROLLBACK, TransactionState::Rollback),
            (MQ_TXN_UNKNOWN, TransactionState::Unknown),
        ],
        "transaction state",
    )
}

/// The core's transaction listener: forwards check-backs to pollers.
struct CheckBridge {
    queue: (Sender<mq_txn_check_t>, Receiver<mq_txn_check_t>),
    closing: Arc<Closing>,
    check_timeout: Duration,
}

impl TransactionListener for CheckBridge {
    fn execute_local(&self, _msg: &Message, _result: &SendResult) -> TransactionState {
        // Only `send_in_transaction` calls it, and libmq uses `send_half`.
        TransactionState::Unknown
    }

    fn check_local(&self, msg: &MessageExt) -> TransactionState {
        if self.closing.is_closing() {
            return TransactionState::Unknown;
        }
        let (replier, waiter) = reply(&self.closing);
        let check = mq_txn_check_t {
            message: mq_message_t::received(msg.clone()),
            replier,
        };
        if self.queue.0.try_send(check).is_err() {
            return TransactionState::Unknown;
        }
        waiter
            .wait(self.check_timeout, &self.closing)
            .unwrap_or(TransactionState::Unknown)
    }
}

/// A transactional producer. Thread-safe: every function may be called from
/// any thread, at the same time as any other, except
/// `mq_txn_producer_destroy`, which must be the last call on it.
pub struct mq_txn_producer_t {
    producer: TransactionProducer,
    bridge: Arc<CheckBridge>,
    extra: Extra,
    /// Closed by close: half sends fail with `MQ_ERR_CLOSED`, also those in
    /// flight.
    gate: Gate,
    /// Set when a call on it panicked.
    poison: Poison,
}

impl Poisonable for mq_txn_producer_t {
    fn poison(&self) -> &Poison {
        &self.poison
    }
}

/// A half message waiting for its outcome. End it with `mq_txn_end` (or
/// free it with `mq_txn_free`, leaving the outcome to the check-back), from
/// any thread, also after its producer is destroyed.
pub struct mq_txn_t {
    txn: Transaction,
    result: mq_send_result_t,
}

/// A check-back: the broker asks for the outcome of a half message. Answer
/// it with `mq_txn_check_answer` within `txn_check_timeout_ms` (5 s).
pub struct mq_txn_check_t {
    message: mq_message_t,
    replier: Replier<TransactionState>,
}

impl mq_txn_producer_t {
    fn close(&self) {
        if !self.gate.close() {
            return;
        }
        self.bridge.closing.start(self.extra.close_timeout);
        self.bridge.queue.0.close();
        while let Ok(check) = self.bridge.queue.1.try_recv() {
            // Dropping the replier answers UNKNOWN.
            drop(check);
        }
        block_on(self.producer.shutdown());
    }
}

/// Creates and starts a transactional producer. Config keys: as
/// `mq_producer_new`, plus `txn_check_timeout_ms` (5000).
///
/// Ownership: `*out` is the caller's: close, then destroy it.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_CONFIG`, `MQ_ERR_NO_NAMESRV`, `MQ_ERR_IO`.
///
/// # Safety
///
/// `cfg` is NULL or a live config; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_producer_new(
    cfg: *const mq_config_t,
    out: *mut *mut mq_txn_producer_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, cfg) = unsafe { (Out::new(out, "out")?, arg(cfg, "cfg")?) };
        let config = cfg.producer()?;
        let extra = cfg.extra();
        let bridge = Arc::new(CheckBridge {
            queue: bounded(PENDING_CHECKS),
            closing: Arc::default(),
            check_timeout: extra.txn_check_timeout,
        });
        let listener: Arc<dyn TransactionListener> = bridge.clone();
        let producer = TransactionProducer::start(instance(cfg)?, config, listener)?;
        out.set(mq_txn_producer_t {
            producer,
            bridge,
            extra,
            gate: Gate::default(),
            poison: Poison::default(),
        });
        ok()
    }
}

/// Sends `m` as a half message (stored, invisible to consumers) and returns
/// the transaction to end once the local transaction has an outcome, within
/// `timeout_ms` (negative: `send_timeout_ms`). `m` is copied. A half
/// message cannot be delayed.
///
/// Ownership: `*out` is the caller's until `mq_txn_end` or `mq_txn_free`.
///
/// Thread: `mq_txn_producer_close` on another thread ends the call with
/// `MQ_ERR_CLOSED` at once (the half message may have been stored; the
/// broker then checks it back).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG`, `MQ_ERR_TIMEOUT`,
/// `MQ_ERR_TRANSPORT`, `MQ_ERR_BROKER`, `MQ_ERR_NO_ROUTE`, `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `tp` is NULL or a live producer; `m` is NULL or a live message not
/// changed during the call; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_producer_send_half(
    tp: *const mq_txn_producer_t,
    m: *const mq_message_t,
    timeout_ms: i32,
    out: *mut *mut mq_txn_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, tp, m) = unsafe { (Out::new(out, "out")?, handle(tp, "producer")?, arg(m, "message")?) };
        let budget = if timeout_ms < 0 {
            tp.producer.producer().config().send_timeout
        } else {
            timeout(timeout_ms)
        };
        let txn = tp
            .gate
            .run("transactional producer", tp.producer.send_half_within(m.message(), budget))??;
        let result = mq_send_result_t::from_owned(txn.result().clone());
        out.set(mq_txn_t { txn, result });
        ok()
    }
}

/// How the half message was stored (ids, queue, transaction id).
///
/// Ownership: borrowed from `t`, valid until it is ended or freed; do not
/// free it.
///
/// # Safety
///
/// `t` is NULL or a live transaction.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_result(t: *const mq_txn_t) -> *const mq_send_result_t {
    ffi! {
        // SAFETY: the caller's promise.
        Ok(std::ptr::from_ref(&unsafe { arg(t, "transaction") }?.result))
    }
}

/// Ends the transaction with `state` (`MQ_TXN_COMMIT`, `MQ_TXN_ROLLBACK`,
/// or `MQ_TXN_UNKNOWN` to leave it to the check-back) and frees `t`: `t` is
/// gone after this call whatever it returns (unless NULL; with a state out
/// of range the outcome is left to the check-back). The outcome goes
/// one-way (as Java's clients send it); the call waits only for a
/// connection to the broker, at most `timeout_ms` (negative: the producer's
/// `send_timeout_ms`). Not ended by the producer's close: a transaction
/// outlives its producer.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG`, `MQ_ERR_TIMEOUT`,
/// `MQ_ERR_TRANSPORT`, `MQ_ERR_NO_ROUTE`.
///
/// # Safety
///
/// `t` is NULL or a live transaction, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_end(t: *mut mq_txn_t, state: i32, timeout_ms: i32) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let t = unsafe { take(t) }.ok_or_else(|| Error::null("transaction"))?;
        let state = txn_state(state)?;
        if timeout_ms < 0 {
            block_on(t.txn.end(state))?;
        } else {
            block_on(t.txn.end_within(state, timeout(timeout_ms)))?;
        }
        ok()
    }
}

/// Frees a transaction without ending it: the broker will check back. NULL
/// is a no-op.
///
/// # Safety
///
/// `t` is NULL or a live transaction, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_free(t: *mut mq_txn_t) {
    ffi! {
        // SAFETY: the caller's promise.
        drop(unsafe { take(t) });
        Ok(())
    }
}

/// Takes the next check-back, waiting up to `timeout_ms` (negative: until
/// one comes or close). `*out` is NULL when none came in time.
///
/// Ownership: `*out` is the caller's until answered or freed.
///
/// Thread: any; `mq_txn_producer_close` on another thread makes a waiting
/// call return `MQ_ERR_CLOSED`.
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_CLOSED`.
///
/// # Safety
///
/// `tp` is NULL or a live producer; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_producer_poll_check(
    tp: *const mq_txn_producer_t,
    timeout_ms: i32,
    out: *mut *mut mq_txn_check_t,
) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promises.
        let (out, tp) = unsafe { (Out::new(out, "out")?, handle(tp, "producer")?) };
        match next(&tp.bridge.queue.1, timeout(timeout_ms)) {
            Ok(Some(check)) => {
                out.set(check);
                ok()
            }
            Ok(None) => ok(),
            Err(_) => Err(Error::closed("transactional producer")),
        }
    }
}

/// The half message the broker asks about (its id, keys, properties and
/// body as sent).
///
/// Ownership: borrowed from `c`, valid until it is answered or freed.
///
/// # Safety
///
/// `c` is NULL or a live check.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_check_message(c: *const mq_txn_check_t) -> *const mq_message_t {
    ffi! {
        // SAFETY: the caller's promise.
        Ok(std::ptr::from_ref(&unsafe { arg(c, "check") }?.message))
    }
}

/// Answers a check-back with `state` (`MQ_TXN_*`) and frees `c`: `c` is
/// gone after this call whatever it returns (unless NULL; a state out of
/// range answers UNKNOWN).
///
/// Errors: `MQ_ERR_NULL`, `MQ_ERR_INVALID_ARG`; `MQ_ERR_TIMEOUT` when
/// `txn_check_timeout_ms` had passed and `MQ_ERR_CLOSED` when the producer
/// had closed (UNKNOWN was answered; the broker asks again).
///
/// # Safety
///
/// `c` is NULL or a live check, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_check_answer(c: *mut mq_txn_check_t, state: i32) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        let c = unsafe { take(c) }.ok_or_else(|| Error::null("check"))?;
        let state = txn_state(state)?;
        c.replier.send(state, "txn_check_timeout_ms", "UNKNOWN")?;
        ok()
    }
}

/// Frees a check unanswered (UNKNOWN: the broker asks again). NULL is a
/// no-op.
///
/// # Safety
///
/// `c` is NULL or a live check, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_check_free(c: *mut mq_txn_check_t) {
    ffi! {
        // SAFETY: the caller's promise.
        drop(unsafe { take(c) });
        Ok(())
    }
}

/// Closes the producer: `mq_txn_producer_send_half` and
/// `mq_txn_producer_poll_check` calls in flight on other threads return
/// `MQ_ERR_CLOSED` at once, pending check-backs are answered UNKNOWN, and
/// the brokers are told. Transactions already sent can still be ended.
/// Idempotent; safe while other threads send or poll.
///
/// Errors: `MQ_ERR_NULL`.
///
/// # Safety
///
/// `tp` is NULL or a live producer.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_producer_close(tp: *const mq_txn_producer_t) -> mq_status_t {
    ffi! {
        // SAFETY: the caller's promise.
        unsafe { arg(tp, "producer") }?.close();
        ok()
    }
}

/// Closes the producer if needed and frees it. NULL is a no-op.
/// Transactions and checks it handed out stay valid. In a forked child it
/// only leaks.
///
/// # Safety
///
/// `tp` is NULL or a producer from `mq_txn_producer_new`, not destroyed
/// before; no other call on it runs now or later.
#[no_mangle]
pub unsafe extern "C" fn mq_txn_producer_destroy(tp: *mut mq_txn_producer_t) {
    ffi! {
        // SAFETY: the caller's promise.
        if let Some(tp) = unsafe { take(tp) } {
            tp.close();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{MQ_ERR_INVALID_ARG, MQ_ERR_TIMEOUT, MQ_OK};

    fn bridge(check_timeout: Duration) -> Arc<CheckBridge> {
        Arc::new(CheckBridge {
            queue: bounded(4),
            closing: Arc::default(),
            check_timeout,
        })
    }

    fn check_call(b: &Arc<CheckBridge>) -> std::thread::JoinHandle<TransactionState> {
        let b = b.clone();
        std::thread::spawn(move || {
            b.check_local(&crate::message::for_test(Default::default(), b"half"))
        })
    }

    fn polled(b: &CheckBridge) -> *mut mq_txn_check_t {
        let check = block_on(b.queue.1.recv()).expect("a check");
        Box::into_raw(Box::new(check))
    }

    #[test]
    fn an_answer_reaches_the_check_and_a_missing_one_is_unknown() {
        let b = bridge(Duration::from_secs(60));
        let call = check_call(&b);
        let check = polled(&b);
        // SAFETY: a live check; answered once.
        unsafe {
            assert!(!mq_txn_check_message(check).is_null());
            assert_eq!(mq_txn_check_answer(check, MQ_TXN_COMMIT), MQ_OK);
        }
        assert_eq!(call.join().unwrap(), TransactionState::Commit);

        let call = check_call(&b);
        // SAFETY: answered once.
        assert_eq!(
            unsafe { mq_txn_check_answer(polled(&b), 9) },
            MQ_ERR_INVALID_ARG
        );
        assert_eq!(call.join().unwrap(), TransactionState::Unknown);

        let call = check_call(&b);
        // SAFETY: freed once.
        unsafe { mq_txn_check_free(polled(&b)) };
        assert_eq!(call.join().unwrap(), TransactionState::Unknown);

        let b = bridge(Duration::from_millis(50));
        let call = check_call(&b);
        let check = polled(&b);
        assert_eq!(call.join().unwrap(), TransactionState::Unknown);
        // SAFETY: answered once.
        assert_eq!(
            unsafe { mq_txn_check_answer(check, MQ_TXN_ROLLBACK) },
            MQ_ERR_TIMEOUT
        );
    }
}
