package mq

/*
#include "gomq.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"unsafe"
)

// TxnState is a transaction's outcome (MQ_TXN_*).
type TxnState int32

// The transaction states.
const (
	// TxnCommit makes the half message visible to consumers.
	TxnCommit TxnState = C.MQ_TXN_COMMIT
	// TxnRollback drops it.
	TxnRollback TxnState = C.MQ_TXN_ROLLBACK
	// TxnUnknown leaves the outcome to a later check-back.
	TxnUnknown TxnState = C.MQ_TXN_UNKNOWN
)

func (s TxnState) String() string {
	switch s {
	case TxnCommit:
		return "COMMIT"
	case TxnRollback:
		return "ROLLBACK"
	case TxnUnknown:
		return "UNKNOWN"
	}
	return fmt.Sprintf("TxnState(%d)", int32(s))
}

// CheckFunc answers a broker's check-back: the outcome of the local
// transaction of a half message whose outcome never arrived. It runs on a
// goroutine the producer owns; a panic answers TxnUnknown (the broker asks
// again later). Answer within txn_check_timeout_ms (5 s).
type CheckFunc func(ctx context.Context, msg *Message) TxnState

// LocalFunc runs the local transaction of a half message that was stored
// with result.
type LocalFunc func(ctx context.Context, msg *Message, result *SendResult) TxnState

// TransactionProducer sends transactional (half) messages and answers the
// broker's check-backs. Its methods may be called from any goroutine.
type TransactionProducer struct {
	h      handle
	check  CheckFunc
	ctx    context.Context
	cancel context.CancelFunc
	poller chan struct{}
}

// NewTransactionProducer creates and starts a transactional producer; cfg
// as for NewProducer (plus "txn_check_timeout_ms"). check answers the
// check-backs; nil answers none (each then counts as TxnUnknown once
// txn_check_timeout_ms has passed).
func NewTransactionProducer(cfg Config, check CheckFunc) (*TransactionProducer, error) {
	ptr, err := newHandle(C.GOMQ_TXN_PRODUCER, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &TransactionProducer{
		h:      newHandleOf(C.GOMQ_TXN_PRODUCER, "transactional producer", ptr),
		check:  check,
		ctx:    ctx,
		cancel: cancel,
	}
	if check != nil {
		p.poller = make(chan struct{})
		go p.pollChecks()
	}
	return p, nil
}

func (p *TransactionProducer) pollChecks() {
	defer close(p.poller)
	id := p.h.enter()
	defer p.h.leave(id)
	for {
		ptr, err := p.h.acquireInternal()
		if err != nil {
			return
		}
		r := C.gomq_txn_poll_check((*C.mq_txn_producer_t)(ptr), -1)
		p.h.mu.RUnlock()
		if errOf(r) != nil {
			return // closed
		}
		if r.ptr == nil {
			continue
		}
		msgs := readMessages(C.GOMQ_SRC_CHECK, r.ptr, 1)
		asSent(msgs[0])
		state := TxnUnknown
		runCallback("a check-back handler (answered UNKNOWN)", func() { state = p.check(p.ctx, msgs[0]) })
		// A late answer (after txn_check_timeout_ms or close) was turned
		// into UNKNOWN by libmq; the broker asks again.
		_ = errOf(C.gomq_txn_check_answer(r.ptr, C.int32_t(state)))
	}
}

// halfTopic is where the broker keeps half messages.
const halfTopic = "RMQ_SYS_TRANS_HALF_TOPIC"

// asSent restores the topic and queue a check-back's message was sent to:
// mqd sends the stored half message as it is, in the half topic, where
// RocketMQ's broker restores REAL_TOPIC and REAL_QID first.
func asSent(m *Message) {
	if m.Topic != halfTopic {
		return
	}
	if t := m.Properties["REAL_TOPIC"]; t != "" {
		m.Topic = t
	}
	if q, err := strconv.ParseInt(m.Properties["REAL_QID"], 10, 32); err == nil {
		m.QueueID = int32(q)
	}
}

// Transaction is a stored half message waiting for its outcome. End it
// once; one never ended is left to the check-back.
type Transaction struct {
	// Result is how the half message was stored.
	Result *SendResult

	mu      sync.Mutex
	t       unsafe.Pointer // mq_txn_t; nil once ended
	cleanup runtime.Cleanup
}

// SendHalf stores msg as a half message, invisible to consumers until the
// transaction commits: within ctx's deadline, or the producer's
// send_timeout_ms without one. When ctx ends first, the half message (if
// it was stored) is rolled back.
func (p *TransactionProducer) SendHalf(ctx context.Context, msg *Message) (*Transaction, error) {
	e, err := encodeOne(msg)
	if err != nil {
		return nil, err
	}
	timeout, err := timeoutMS(ctx)
	if err != nil {
		return nil, err
	}
	// Built here: msg is not read once SendHalf returns.
	b := C.gomq_message_build(e.cStrs(), e.cInts(), e.cBodies())
	if err := errOf(b); err != nil {
		return nil, err
	}
	m := (*C.mq_message_t)(b.ptr)
	free := func() { C.gomq_message_free(unsafe.Pointer(m)) }
	return call(ctx, func() (*Transaction, error) {
		defer free()
		ptr, err := p.h.acquire()
		if err != nil {
			return nil, err
		}
		defer p.h.mu.RUnlock()
		buf := make([]byte, resultBuf)
		s := C.gomq_txn_send_half((*C.mq_txn_producer_t)(ptr), m, timeout, cstr(buf), C.size_t(len(buf)))
		res, err := sendOutcome(&s, buf, true)
		if err != nil {
			return nil, err
		}
		t := &Transaction{Result: res, t: s.r.ptr}
		t.cleanup = runtime.AddCleanup(t, func(ptr unsafe.Pointer) { C.gomq_txn_free(ptr) }, s.r.ptr)
		return t, nil
	}, func(t *Transaction) { _ = t.End(context.Background(), TxnRollback) }, free)
}

// End ends the transaction with state (one-way: it waits only for a
// connection to the broker, until ctx's deadline or the producer's
// send_timeout_ms). The transaction is gone afterwards whatever End returns
// (unless ctx had ended before End began).
func (t *Transaction) End(ctx context.Context, state TxnState) error {
	timeout, err := timeoutMS(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	ptr := t.t
	t.t = nil
	if ptr != nil {
		t.cleanup.Stop()
	}
	t.mu.Unlock()
	if ptr == nil {
		return newError(ErrState, "the transaction has ended already", 0)
	}
	_, err = call(ctx, func() (struct{}, error) {
		return struct{}{}, errOf(C.gomq_txn_end(ptr, C.int32_t(state), timeout))
	}, nil, func() {
		t.mu.Lock()
		t.t = ptr
		t.cleanup = runtime.AddCleanup(t, func(ptr unsafe.Pointer) { C.gomq_txn_free(ptr) }, ptr)
		t.mu.Unlock()
	})
	return err
}

// Commit ends the transaction with TxnCommit.
func (t *Transaction) Commit(ctx context.Context) error { return t.End(ctx, TxnCommit) }

// Rollback ends the transaction with TxnRollback.
func (t *Transaction) Rollback(ctx context.Context) error { return t.End(ctx, TxnRollback) }

// SendInTransaction stores msg as a half message, runs local on the
// calling goroutine, and ends the transaction with the state it returns
// (even when ctx has ended meanwhile). If local panics, the transaction is
// left to the check-back (TxnUnknown) and the panic goes on.
func (p *TransactionProducer) SendInTransaction(ctx context.Context, msg *Message, local LocalFunc) (*SendResult, TxnState, error) {
	tx, err := p.SendHalf(ctx, msg)
	if err != nil {
		return nil, TxnUnknown, err
	}
	ended := false
	defer func() {
		if !ended {
			_ = tx.End(context.WithoutCancel(ctx), TxnUnknown)
		}
	}()
	state := local(ctx, msg, tx.Result)
	ended = true
	return tx.Result, state, tx.End(context.WithoutCancel(ctx), state)
}

// Close closes the producer: pending check-backs are answered TxnUnknown,
// calls blocked on it return ErrClosed. Transactions already sent can still
// be ended. Idempotent.
func (p *TransactionProducer) Close() error {
	p.cancel()
	return p.h.close(func() {
		if p.poller != nil {
			<-p.poller
		}
	})
}
