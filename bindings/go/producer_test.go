package mq_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mq.dev/mq"
)

// Async sends run their callbacks on the producer's goroutine; Flush waits
// for them. One-way, ordered and delayed sends arrive.
func TestSendModes(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	const n = 50
	var ok, failed atomic.Int32
	var mu sync.Mutex
	ids := map[string]bool{}
	for i := range n {
		err := p.SendAsync(&mq.Message{Topic: topic, Body: []byte(fmt.Sprintf("async-%d", i))}, func(r *mq.SendResult, err error) {
			if err != nil || r == nil || r.MsgID == "" {
				failed.Add(1)
				return
			}
			mu.Lock()
			ids[r.MsgID] = true
			mu.Unlock()
			ok.Add(1)
		})
		if err != nil {
			t.Fatalf("SendAsync: %v", err)
		}
	}
	if err := p.Flush(ctxFor(t, 20*time.Second)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if ok.Load() != n || failed.Load() != 0 || len(ids) != n {
		t.Fatalf("async: %d ok, %d failed, %d ids", ok.Load(), failed.Load(), len(ids))
	}
	if err := p.SendOneway(ctxFor(t, 10*time.Second), &mq.Message{Topic: topic, Body: []byte("oneway")}); err != nil {
		t.Fatalf("SendOneway: %v", err)
	}
	var queue int32 = -1
	var last int64 = -1
	for i := range 5 {
		r, err := p.SendOrdered(ctxFor(t, 10*time.Second), &mq.Message{Topic: topic, Body: []byte(fmt.Sprintf("ordered-%d", i))}, "customer-7")
		if err != nil {
			t.Fatalf("SendOrdered: %v", err)
		}
		if (queue >= 0 && r.QueueID != queue) || r.QueueOffset <= last {
			t.Errorf("ordered send %d went to queue %d offset %d (before: %d, %d)", i, r.QueueID, r.QueueOffset, queue, last)
		}
		queue, last = r.QueueID, r.QueueOffset
	}
	sentAt := time.Now()
	send(t, p, &mq.Message{Topic: topic, Body: []byte("delayed"), DelayLevel: 1})

	c := newPull(t, "consume_from", "first")
	if err := c.Subscribe(ctxFor(t, 10*time.Second), topic, "*"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	all := pollUntil(t, c, 30*time.Second, "every message", func(m []*mq.Message) bool {
		return len(bodies(m)) == n+1+5+1
	})
	for _, m := range all {
		if string(m.Body) == "delayed" {
			if d := m.StoreTime.Sub(sentAt); d < 800*time.Millisecond {
				t.Errorf("the delayed message was stored %v after its send", d)
			}
		}
	}
}

// Deadlines become timeouts, cancellations end blocking calls at once.
func TestContextDeadlineAndCancel(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	r := send(t, p, &mq.Message{Topic: topic, Body: []byte("one")})
	c := newPull(t)
	q := mq.Queue{Topic: topic, BrokerName: r.BrokerName, QueueID: r.QueueID}
	waitRoute(t, c, topic)
	if err := c.Assign(ctxFor(t, 10*time.Second), []mq.Queue{q}); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if err := c.Seek(ctxFor(t, 10*time.Second), q, r.QueueOffset+1); err != nil {
		t.Fatalf("Seek to the end: %v", err)
	}

	// A deadline ends an empty Poll with DeadlineExceeded, on time.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.Poll(ctx)
	cancel()
	if el := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || el < 290*time.Millisecond || el > 800*time.Millisecond {
		t.Errorf("Poll with a 300 ms deadline: %v after %v", err, el)
	}

	// A cancellation ends it within 200 ms.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = c.Poll(ctx)
	if el := time.Since(start); !errors.Is(err, context.Canceled) || el > 300*time.Millisecond {
		t.Errorf("Poll cancelled after 100 ms: %v after %v", err, el)
	}

	// An ended context sends nothing.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := p.Send(ctx, &mq.Message{Topic: topic, Body: []byte("no")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context: %v", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := p.Send(ctx, &mq.Message{Topic: topic, Body: []byte("no")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send past its deadline: %v", err)
	}
	if _, err := p.SendBatch(ctx, []*mq.Message{{Topic: topic, Body: []byte("no")}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SendBatch past its deadline: %v", err)
	}

	// A send that cannot complete: a NameServer that accepts and never
	// answers. Cancellation and deadline both end it promptly.
	silent := silentServer(t)
	stuck, err := mq.NewProducer(mq.Config{"namesrv_addr": silent, "group": unique(t, "stuck"), "send_timeout_ms": "20000", "request_timeout_ms": "1000"})
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	defer stuck.Close()
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = stuck.Send(ctx, &mq.Message{Topic: topic, Body: []byte("stuck")})
	if el := time.Since(start); !errors.Is(err, context.Canceled) || el > 400*time.Millisecond {
		t.Errorf("a stuck Send cancelled after 100 ms: %v after %v", err, el)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = stuck.Send(ctx, &mq.Message{Topic: topic, Body: []byte("stuck")})
	if el := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || el > time.Second {
		t.Errorf("a stuck Send with a 300 ms deadline: %v after %v", err, el)
	}
	// The same without a cancellable context: the deadline is libmq's
	// timeout (send_timeout_ms here).
	tp, err := mq.NewProducer(mq.Config{"namesrv_addr": silent, "group": unique(t, "stuck2"), "send_timeout_ms": "300"})
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	defer tp.Close()
	start = time.Now()
	_, err = tp.Send(context.Background(), &mq.Message{Topic: topic, Body: []byte("stuck")})
	if el := time.Since(start); err == nil || el > 3*time.Second {
		t.Errorf("a stuck Send with send_timeout_ms 300: %v after %v", err, el)
	}
	t.Logf("a stuck send without a context deadline fails with: %v", err)
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	var conns []interface{ Close() error }
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// Send waits for its report in Go; when the async window is full it sends
// the blocking way, and with retry settings that differ it always does.
// Every Send still gets its own result.
func TestSendThroughReportsAndItsFallbacks(t *testing.T) {
	for _, extra := range [][]string{
		{"max_inflight_async", "2"},
		{"retry_times_when_send_failed", "1", "retry_times_when_send_async_failed", "0"},
	} {
		p, err := mq.NewProducer(config(unique(t, "p"), extra...))
		if err != nil {
			t.Fatalf("NewProducer: %v", err)
		}
		topic := unique(t, "t")
		const senders, each = 8, 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[string]bool{}
		errs := make(chan error, senders*each)
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					r, err := p.Send(context.Background(), &mq.Message{Topic: topic, Body: []byte(fmt.Sprintf("%d-%d", g, i))})
					if err != nil {
						errs <- err
						continue
					}
					mu.Lock()
					ids[r.MsgID] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%v: Send: %v", extra, err)
		}
		if len(ids) != senders*each {
			t.Errorf("%v: %d distinct message ids for %d sends", extra, len(ids), senders*each)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}
