package mq_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"mq.dev/mq"
)

var nameChars = regexp.MustCompile(`[^A-Za-z0-9]`)

// unique is a topic or group name for this test, unique in this run.
func unique(t *testing.T, what string) string {
	return fmt.Sprintf("Go_%s_%s_%d", nameChars.ReplaceAllString(t.Name(), ""), what, time.Now().UnixNano()%1e9)
}

// config is a client config for group on the test daemon, plus extra pairs.
func config(group string, extra ...string) mq.Config {
	c := mq.Config{
		"namesrv_addr":                 namesrv,
		"group":                        group,
		"poll_name_server_interval_ms": "500",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i]] = extra[i+1]
	}
	return c
}

func newProducer(t *testing.T) *mq.Producer {
	t.Helper()
	p, err := mq.NewProducer(config(unique(t, "p")))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Producer.Close: %v", err)
		}
	})
	return p
}

func newPull(t *testing.T, extra ...string) *mq.PullConsumer {
	t.Helper()
	c, err := mq.NewPullConsumer(config(unique(t, "pull"), extra...))
	if err != nil {
		t.Fatalf("NewPullConsumer: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("PullConsumer.Close: %v", err)
		}
	})
	return c
}

// send sends msg, failing the test on an error.
func send(t *testing.T, p *mq.Producer, msg *mq.Message) *mq.SendResult {
	t.Helper()
	r, err := p.Send(ctxFor(t, 10*time.Second), msg)
	if err != nil {
		t.Fatalf("Send to %s: %v", msg.Topic, err)
	}
	if r.Status != mq.SendOK || r.MsgID == "" || r.BrokerName == "" || r.Topic != msg.Topic {
		t.Fatalf("Send: unexpected result %+v", r)
	}
	return r
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pollUntil polls c until cond(all received so far) holds or d passes.
// waitRoute waits until the NameServer has a route for topic: a topic the
// broker created on a send is registered moments after the send returns.
func waitRoute(t *testing.T, c *mq.PullConsumer, topic string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.FetchQueues(ctxFor(t, 5*time.Second), topic)
		if err == nil {
			return
		}
		if !errors.Is(err, mq.ErrNoRoute) || time.Now().After(deadline) {
			t.Fatalf("no route for %s: %v", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pollUntil(t *testing.T, c *mq.PullConsumer, d time.Duration, what string, cond func([]*mq.Message) bool) []*mq.Message {
	t.Helper()
	ctx := ctxFor(t, d)
	var all []*mq.Message
	for !cond(all) {
		msgs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll while waiting for %s (have %d messages): %v", what, len(all), err)
		}
		all = append(all, msgs...)
	}
	return all
}

// bodies is the set of bodies of msgs.
func bodies(msgs []*mq.Message) map[string]int {
	m := map[string]int{}
	for _, x := range msgs {
		m[string(x.Body)]++
	}
	return m
}

// recorder collects what a push handler saw.
type recorder struct {
	mu   sync.Mutex
	msgs []*mq.Message
}

func (r *recorder) add(msgs []*mq.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msgs...)
}

func (r *recorder) all() []*mq.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*mq.Message(nil), r.msgs...)
}

func (r *recorder) count(f func(*mq.Message) bool) int {
	n := 0
	for _, m := range r.all() {
		if f(m) {
			n++
		}
	}
	return n
}

// isClosed says whether err is nil or ErrClosed.
func isClosed(err error) bool {
	return err == nil || errors.Is(err, mq.ErrClosed)
}

var _ = context.Background

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
