//! The transactional producer (RocketMQ's TransactionMQProducer): a half message
//! is stored invisible to consumers, the local transaction runs, and the outcome
//! commits or rolls it back; when the outcome never arrives, the broker asks
//! (CHECK_TRANSACTION_STATE) and the listener's check answers.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use mq_protocol::codes::request;
use mq_protocol::frame::RemotingCommand;
use mq_protocol::headers::{CommandHeader, EndTransactionRequestHeader};
use mq_protocol::message::{decode_offset_msg_id, sys_flag};
use mq_protocol::properties::keys;

use super::connection::{client_request, RemotingError};
use super::error::{ClientError, Result};
use super::instance::{ClientInstance, Member};
use super::message::{decode_messages, Message, MessageExt};
use super::producer::{send_timed_out, Producer, ProducerConfig, SendResult, SendStatus};
use super::timeout::within;

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// Deliver the message.
    Commit,
    /// Drop the message.
    Rollback,
    /// Not known yet; the broker will ask again later.
    Unknown,
}

impl TransactionState {
    fn sys_flag(self) -> i32 {
        match self {
            TransactionState::Commit => sys_flag::TRANSACTION_COMMIT,
            TransactionState::Rollback => sys_flag::TRANSACTION_ROLLBACK,
            TransactionState::Unknown => sys_flag::TRANSACTION_NOT_TYPE,
        }
    }
}

/// The application's side of a transaction.
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction after the half message is stored.
    fn execute_local(&self, msg: &Message, result: &SendResult) -> TransactionState;
    /// Answers the broker's check of a half message whose outcome never arrived.
    fn check_local(&self, msg: &MessageExt) -> TransactionState;
}

/// A half message stored by [`TransactionProducer::send_half`], waiting for
/// its outcome. Ending it is the second phase; dropping it unended leaves the
/// outcome to the broker's check-back (as [`TransactionState::Unknown`] does).
/// It holds its producer, so it can be ended from any thread, later.
pub struct Transaction {
    producer: Producer,
    result: SendResult,
}

impl Transaction {
    /// How the half message was stored (its ids, queue and offset).
    pub fn result(&self) -> &SendResult {
        &self.result
    }

    /// Commits or rolls back the half message (one-way, as the Java client
    /// does); [`TransactionState::Unknown`] tells the broker nothing new, so
    /// it will check back. Within the producer's `send_timeout` (a
    /// connection to make, a full send queue).
    pub async fn end(self, state: TransactionState) -> Result<()> {
        let budget = self.producer.config().send_timeout;
        self.end_within(state, budget).await
    }

    /// [`end`](Self::end) within `timeout` instead of `send_timeout`.
    pub async fn end_within(self, state: TransactionState, timeout: Duration) -> Result<()> {
        let broker = self.result.queue.broker_name.clone();
        within(timeout, self.end_now(state))
            .await
            .unwrap_or_else(|| {
                Err(ClientError::Remoting(RemotingError::Timeout {
                    code: request::END_TRANSACTION,
                    addr: broker,
                    timeout,
                }))
            })
    }

    async fn end_now(self, state: TransactionState) -> Result<()> {
        let result = &self.result;
        let instance = self.producer.instance();
        let addr = instance
            .master_addr(&result.queue.broker_name)
            .ok_or_else(|| ClientError::NoBrokerAddress(result.queue.broker_name.clone()))?;
        let (_, commit_log_offset) =
            decode_offset_msg_id(&result.offset_msg_id).ok_or_else(|| {
                ClientError::decode(
                    "offset message id",
                    format!("{:?} is not one", result.offset_msg_id),
                )
            })?;
        let header = EndTransactionRequestHeader {
            producer_group: self.producer.config().group.clone(),
            tran_state_table_offset: result.queue_offset,
            commit_log_offset,
            commit_or_rollback: state.sys_flag(),
            from_transaction_check: Some(false),
            msg_id: result.msg_id.clone(),
            transaction_id: result
                .transaction_id
                .clone()
                .or_else(|| Some(result.msg_id.clone())),
        };
        let mut cmd = client_request(request::END_TRANSACTION);
        header.encode(&mut cmd.ext_fields);
        instance.invoke_oneway(&addr, cmd).await
    }
}

/// A producer that sends messages in transactions.
pub struct TransactionProducer {
    producer: Producer,
    listener: Arc<dyn TransactionListener>,
    /// Keeps the check-back member registered with the instance.
    checker: Arc<Checker>,
}

/// Answers CHECK_TRANSACTION_STATE for one producer group.
struct Checker {
    group: String,
    instance: Weak<ClientInstance>,
    listener: Arc<dyn TransactionListener>,
    /// Each check being answered holds a clone until its END_TRANSACTION
    /// is written; shutdown drops this one and waits for the channel to
    /// close, so that an answer given just before shutdown still goes out.
    answering: Mutex<Option<async_channel::Sender<()>>>,
    /// Closed once no check is being answered (after shutdown let go).
    answered: async_channel::Receiver<()>,
}

/// How long shutdown waits for the checks being answered.
const ANSWERS_WAIT: Duration = Duration::from_secs(3);

impl Member for Checker {
    fn on_server_request(
        &self,
        broker: &str,
        request: &RemotingCommand,
    ) -> Option<RemotingCommand> {
        if request.code != request::CHECK_TRANSACTION_STATE {
            return None;
        }
        let msgs = decode_messages(&request.body, "").ok()?;
        let msg = msgs.into_iter().next()?;
        if msg.properties.get(keys::PGROUP) != Some(&self.group) {
            return None;
        }
        let instance = self.instance.clone();
        let listener = self.listener.clone();
        let answering = self
            .answering
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let group = self.group.clone();
        let broker = broker.to_owned();
        let header = request.clone();
        // The check is the application's code and may block: off the read
        // loop, and holding the instance only weakly while it runs, so that a
        // check that never returns cannot keep the instance alive.
        self.instance.upgrade()?.spawn_detached(async move {
            let check_msg = msg.clone();
            let state = blocking::unblock(move || listener.check_local(&check_msg)).await;
            let Some(instance) = instance.upgrade() else {
                return;
            };
            let parse = |k: &str| {
                header
                    .get(k)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            let end = EndTransactionRequestHeader {
                producer_group: group,
                tran_state_table_offset: parse("tranStateTableOffset"),
                commit_log_offset: parse("commitLogOffset"),
                commit_or_rollback: state.sys_flag(),
                from_transaction_check: Some(true),
                msg_id: header.get("msgId").unwrap_or(&msg.msg_id).to_owned(),
                transaction_id: header.get("transactionId").map(str::to_owned),
            };
            let mut cmd = client_request(request::END_TRANSACTION);
            end.encode(&mut cmd.ext_fields);
            if let Err(e) = instance.invoke_oneway(&broker, cmd).await {
                log::warn!("answering a transaction check from {broker}: {e}");
            }
            drop(answering);
        });
        // CHECK_TRANSACTION_STATE is one-way: nothing to answer here.
        None
    }
}

impl TransactionProducer {
    /// Starts a transactional producer for `config.group` with `listener`.
    pub fn start(
        instance: Arc<ClientInstance>,
        config: ProducerConfig,
        listener: Arc<dyn TransactionListener>,
    ) -> Result<Self> {
        let (answering, answered) = async_channel::bounded(1);
        let checker = Arc::new(Checker {
            group: config.group.clone(),
            instance: Arc::downgrade(&instance),
            listener: listener.clone(),
            answering: Mutex::new(Some(answering)),
            answered,
        });
        let member: Arc<dyn Member> = checker.clone();
        instance.register(Arc::downgrade(&member));
        let producer = Producer::start(instance, config)?;
        Ok(TransactionProducer {
            producer,
            listener,
            checker,
        })
    }

    /// Sends `msg` as a half message, runs the local transaction, and commits or
    /// rolls back by its outcome. Returns the send result and the outcome.
    pub async fn send_in_transaction(
        &self,
        msg: &Message,
    ) -> Result<(SendResult, TransactionState)> {
        let half = self.send_half(msg).await?;
        let state = if half.result().status == SendStatus::SendOk {
            let listener = self.listener.clone();
            let (m, r) = (msg.clone(), half.result().clone());
            blocking::unblock(move || listener.execute_local(&m, &r)).await
        } else {
            TransactionState::Rollback
        };
        let result = half.result().clone();
        half.end(state).await?;
        Ok((result, state))
    }

    /// The first phase alone: stores `msg` as a half message (invisible to
    /// consumers) and returns the [`Transaction`] to end once the caller's
    /// local transaction has an outcome. The listener's `execute_local` is not
    /// called; its `check_local` still answers the broker's check-backs for
    /// transactions never ended. Within the producer's `send_timeout`.
    pub async fn send_half(&self, msg: &Message) -> Result<Transaction> {
        self.send_half_within(msg, self.producer.config().send_timeout)
            .await
    }

    /// [`send_half`](Self::send_half) within `timeout` (the route lookup
    /// and the send) instead of `send_timeout`.
    pub async fn send_half_within(&self, msg: &Message, timeout: Duration) -> Result<Transaction> {
        within(timeout, self.send_half_now(msg, timeout))
            .await
            .unwrap_or_else(|| Err(send_timed_out(&msg.topic, timeout)))
    }

    async fn send_half_now(&self, msg: &Message, timeout: Duration) -> Result<Transaction> {
        if msg.properties.contains_key(keys::DELAY) {
            return Err(ClientError::InvalidArgument(
                "transactional messages cannot be delayed".into(),
            ));
        }
        let mut half = msg.clone();
        half.properties.insert(keys::TRAN_MSG.into(), "true".into());
        half.properties
            .insert(keys::PGROUP.into(), self.producer.config().group.clone());
        let queues = self.producer.queues_for(&msg.topic).await?;
        let mq = self.producer.select(&queues, None);
        let result = self
            .producer
            .send_to_with_flag(&half, mq, timeout, sys_flag::TRANSACTION_PREPARED)
            .await?;
        Ok(Transaction {
            producer: self.producer.clone(),
            result,
        })
    }

    /// The underlying producer (for ordinary sends in the same group).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Stops the producer, once the check-backs already answered have had
    /// their END_TRANSACTION written (up to 3 s: a check whose listener
    /// has not answered yet is not waited for beyond that).
    pub async fn shutdown(&self) {
        let answering = self
            .checker
            .answering
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(answering);
        // Closed (an error) once every answer in flight has let go.
        within(ANSWERS_WAIT, self.checker.answered.recv()).await;
        self.producer.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::ClientConfig;
    use std::time::Instant;

    struct Undecided;
    impl TransactionListener for Undecided {
        fn execute_local(&self, _: &Message, _: &SendResult) -> TransactionState {
            TransactionState::Unknown
        }
        fn check_local(&self, _: &MessageExt) -> TransactionState {
            TransactionState::Unknown
        }
    }

    #[test]
    fn a_half_send_ends_within_its_budget() {
        // A NameServer that accepts and never answers: the route lookup
        // alone would take the request timeout (3 s).
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let addr = silent.local_addr().expect("its address").to_string();
        let instance = ClientInstance::start(ClientConfig::new(&addr)).expect("an instance");
        let producer = TransactionProducer::start(
            instance.clone(),
            ProducerConfig::new("T"),
            Arc::new(Undecided),
        )
        .expect("a producer");
        let started = Instant::now();
        let sent = crate::block_on(
            producer.send_half_within(&Message::new("T", "x"), Duration::from_millis(200)),
        );
        let err = sent.err().expect("nothing answers");
        assert_eq!(err.kind(), crate::ErrorKind::Timeout, "{err}");
        assert!(started.elapsed() < Duration::from_millis(1500));
        drop(silent);
        instance.shutdown();
    }
}
