package mq_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"mq.dev/mq"
)

// Close is idempotent and every later call fails with ErrClosed.
func TestUseAfterClose(t *testing.T) {
	ctx := ctxFor(t, 10*time.Second)
	p, err := mq.NewProducer(config(unique(t, "p")))
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Send(ctx, &mq.Message{Topic: unique(t, "t"), Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.Close(); err != nil {
			t.Errorf("Producer.Close: %v", err)
		}
	}
	if _, err := p.Send(ctx, &mq.Message{Topic: r.Topic, Body: []byte("x")}); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if err := p.SendAsync(&mq.Message{Topic: r.Topic, Body: []byte("x")}, nil); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("SendAsync after Close: %v", err)
	}
	var e *mq.Error
	if _, err := p.SendBatch(ctx, []*mq.Message{{Topic: r.Topic, Body: []byte("x")}}); !errors.As(err, &e) || e.Name != "MQ_ERR_CLOSED" {
		t.Errorf("SendBatch after Close: %v", err)
	}

	c, err := mq.NewPullConsumer(config(unique(t, "pull")))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close()
	if _, err := c.Poll(ctx); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
	if err := c.Commit(ctx); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Commit after Close: %v", err)
	}

	pc, err := mq.NewPushConsumer(config(unique(t, "push")))
	if err != nil {
		t.Fatal(err)
	}
	pc.Close()
	if err := pc.Start(func(context.Context, []*mq.Message) mq.ConsumeResult { return mq.ConsumeSuccess }); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	tp, err := mq.NewTransactionProducer(config(unique(t, "tx")), nil)
	if err != nil {
		t.Fatal(err)
	}
	tp.Close()
	if _, err := tp.SendHalf(ctx, &mq.Message{Topic: r.Topic, Body: []byte("x")}); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("SendHalf after Close: %v", err)
	}
}

// Close from inside a handler or callback neither deadlocks nor waits
// for itself.
func TestCloseFromCallbacks(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	send(t, p, &mq.Message{Topic: topic, Tags: "TagA", Body: []byte("x")})

	closed := make(chan error, 1)
	consumer := make(chan *mq.PushConsumer, 1)
	var once sync.Once
	consumer <- startPush(t, topic, func(ctx context.Context, msgs []*mq.Message) mq.ConsumeResult {
		once.Do(func() { closed <- (<-consumer).Close() })
		<-ctx.Done() // Close has begun
		return mq.ConsumeSuccess
	})
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close from a handler: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close from a handler did not return")
	}

	q, err := mq.NewProducer(config(unique(t, "p2")))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	if err := q.SendAsync(&mq.Message{Topic: topic, Body: []byte("y")}, func(*mq.SendResult, error) { done <- q.Close() }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close from an async callback: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close from an async callback did not return")
	}
	if err := q.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// Close races calls blocked in libmq (Poll) and calls in flight (Send,
// SendAsync, Commit), from several goroutines at once, many times: no
// crash, no hang, every call returns nil or ErrClosed. MQ_STRESS_ITERATIONS
// and MQ_STRESS_SECONDS bound it (1000 and 40 by default).
func TestCloseRacesBlockedCalls(t *testing.T) {
	iterations, seconds := envInt("MQ_STRESS_ITERATIONS", 1000), envInt("MQ_STRESS_SECONDS", 40)
	p := newProducer(t)
	topic := unique(t, "t")
	r := send(t, p, &mq.Message{Topic: topic, Body: []byte("seed")})
	q := mq.Queue{Topic: topic, BrokerName: r.BrokerName, QueueID: r.QueueID}
	// One instance for every handle of the loop (as RocketMQ clients share
	// theirs): creating handles stays cheap, the races stay the same.
	base := config("", "instance_name", unique(t, "inst"))
	anchor, err := mq.NewProducer(with(base, "group", unique(t, "anchor")))
	if err != nil {
		t.Fatal(err)
	}
	defer anchor.Close()

	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	n := 0
	for ; n < iterations && time.Now().Before(deadline); n++ {
		if err := closeRace(q, base, n); err != nil {
			t.Fatalf("iteration %d: %v", n, err)
		}
	}
	t.Logf("%d iterations", n)
	if n < min(50, iterations) {
		t.Errorf("only %d iterations in %d s", n, seconds)
	}
}

func closeRace(q mq.Queue, base mq.Config, i int) error {
	p, err := mq.NewProducer(with(base, "group", fmt.Sprintf("stress_p_%d", i), "max_inflight_async", "64"))
	if err != nil {
		return err
	}
	c, err := mq.NewPullConsumer(with(base, "group", fmt.Sprintf("stress_c_%d", i), "auto_commit", "false"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := c.Assign(ctx, []mq.Queue{q}); err != nil {
		return fmt.Errorf("Assign: %w", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	check := func(what string, err error) {
		if !isClosed(err) {
			errs <- fmt.Errorf("%s: %w", what, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range 2 {
		wg.Add(1)
		go func() { // blocked in Poll at the end of the queue
			defer wg.Done()
			for {
				_, err := c.Poll(ctx)
				if err != nil {
					check("Poll", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // a cancellable Poll and Commit, through helper goroutines
		defer wg.Done()
		for {
			if err := c.Commit(cctx); err != nil {
				if !errors.Is(err, context.Canceled) {
					check("Commit", err)
				}
				return
			}
			if _, err := c.Poll(cctx); err != nil {
				if !errors.Is(err, context.Canceled) {
					check("Poll(cancellable)", err)
				}
				return
			}
		}
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := p.Send(ctx, &mq.Message{Topic: q.Topic, Body: []byte("s")})
				if err != nil {
					check("Send", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			err := p.SendAsync(&mq.Message{Topic: q.Topic, Body: []byte("a")}, func(_ *mq.SendResult, err error) {
				check("SendAsync callback", err)
			})
			if err != nil {
				if !errors.Is(err, mq.ErrQueueFull) {
					check("SendAsync", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	for range 2 { // concurrent Closes of each
		wg.Add(2)
		go func() { defer wg.Done(); check("PullConsumer.Close", c.Close()) }()
		go func() { defer wg.Done(); check("Producer.Close", p.Close()) }()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		cancel()
		return errors.New("calls still running 20 s after Close")
	}
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

func with(c mq.Config, kv ...string) mq.Config {
	out := mq.Config{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
