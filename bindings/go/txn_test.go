package mq_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"mq.dev/mq"
)

// Local outcomes commit and roll back; an unknown one is committed by the
// check-back handler, which runs on the producer's goroutine.
func TestTransactionCheckBack(t *testing.T) {
	topic := unique(t, "t")
	var checks atomic.Int32
	tp, err := mq.NewTransactionProducer(config(unique(t, "txp")), func(ctx context.Context, msg *mq.Message) mq.TxnState {
		checks.Add(1)
		if string(msg.Body) == "unknown" && msg.Topic == topic && msg.Property("color") == "green" {
			return mq.TxnCommit
		}
		return mq.TxnRollback
	})
	if err != nil {
		t.Fatalf("NewTransactionProducer: %v", err)
	}
	defer func() {
		if err := tp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	ctx := ctxFor(t, 20*time.Second)
	for _, c := range []struct {
		body  string
		state mq.TxnState
	}{{"commit", mq.TxnCommit}, {"rollback", mq.TxnRollback}, {"unknown", mq.TxnUnknown}} {
		msg := &mq.Message{Topic: topic, Body: []byte(c.body), Properties: map[string]string{"color": "green"}}
		r, state, err := tp.SendInTransaction(ctx, msg, func(ctx context.Context, m *mq.Message, r *mq.SendResult) mq.TxnState {
			if m != msg || r.TransactionID == "" {
				t.Errorf("local transaction of %q: %+v", c.body, r)
			}
			return c.state
		})
		if err != nil || state != c.state || r.MsgID == "" {
			t.Fatalf("SendInTransaction(%s): %v, %v, %+v", c.body, state, err, r)
		}
	}
	// Two-phase by hand.
	tx, err := tp.SendHalf(ctx, &mq.Message{Topic: topic, Body: []byte("half")})
	if err != nil {
		t.Fatalf("SendHalf: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, mq.ErrState) {
		t.Errorf("a second Commit: %v", err)
	}

	c := newPull(t, "consume_from", "first")
	if err := c.Subscribe(ctx, topic, "*"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	all := pollUntil(t, c, 30*time.Second, "the committed messages", func(m []*mq.Message) bool {
		b := bodies(m)
		return b["commit"] > 0 && b["unknown"] > 0 && b["half"] > 0
	})
	if bodies(all)["rollback"] > 0 {
		t.Error("a rolled-back message was delivered")
	}
	if checks.Load() < 1 {
		t.Error("no check-back ran")
	}
}
