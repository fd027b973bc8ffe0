package mq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mq.dev/mq"
)

// startPush starts a push consumer of topic (from the first offset) with
// handler, closed at the test's end.
func startPush(t *testing.T, topic string, handler mq.Handler, extra ...string) *mq.PushConsumer {
	t.Helper()
	cfg := config(unique(t, "push"), append([]string{"consume_from", "first", "consume_threads", "4"}, extra...)...)
	c, err := mq.NewPushConsumer(cfg)
	if err != nil {
		t.Fatalf("NewPushConsumer: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("PushConsumer.Close: %v", err)
		}
	})
	if err := c.Subscribe(topic, "TagA || TagB"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Start(handler); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

// A handler that asks for a retry sees the message again, with
// ReconsumeTimes 1 and every field intact.
func TestPushRetryRedelivers(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	sent := map[string]*mq.SendResult{}
	for i := range 3 {
		body := fmt.Sprintf("retry-%d", i)
		sent[body] = send(t, p, &mq.Message{
			Topic: topic, Tags: "TagA", Keys: []string{fmt.Sprintf("key-%d", i), "other"},
			Body: []byte(body), Properties: map[string]string{"color": "blue"},
		})
	}
	// A tag the subscription does not take.
	send(t, p, &mq.Message{Topic: topic, Tags: "TagC", Body: []byte("filtered")})

	rec := &recorder{}
	startPush(t, topic, func(ctx context.Context, msgs []*mq.Message) mq.ConsumeResult {
		rec.add(msgs)
		for _, m := range msgs {
			if m.ReconsumeTimes == 0 {
				return mq.ConsumeLater
			}
		}
		return mq.ConsumeSuccess
	})
	waitFor(t, 40*time.Second, "three redeliveries", func() bool {
		return len(bodies(filter(rec.all(), func(m *mq.Message) bool { return m.ReconsumeTimes == 1 }))) == 3
	})
	for _, m := range rec.all() {
		r, ok := sent[string(m.Body)]
		if !ok {
			t.Errorf("unexpected message %q (tags %q)", m.Body, m.Tags)
			continue
		}
		if m.Topic != topic || m.Tags != "TagA" || m.Property("color") != "blue" || len(m.Keys) != 2 || m.Keys[1] != "other" {
			t.Errorf("fields lost on delivery %d: %+v", m.ReconsumeTimes, m)
		}
		if m.MsgID != r.MsgID {
			t.Errorf("delivery %d of %q: MsgID %s, sent as %s", m.ReconsumeTimes, m.Body, m.MsgID, r.MsgID)
		}
		if m.ReconsumeTimes == 1 && m.Property("RETRY_TOPIC") != topic {
			t.Errorf("redelivery without RETRY_TOPIC: %v", m.Properties)
		}
		if m.BornTime.IsZero() || m.StoreTime.Before(m.BornTime.Add(-time.Second)) || m.BornHost == "" || m.StoreHost == "" || m.BrokerName == "" {
			t.Errorf("received fields missing: %+v", m)
		}
	}
}

// A handler that panics counts as ConsumeLater: the message comes back.
func TestPushHandlerPanicRedelivers(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	send(t, p, &mq.Message{Topic: topic, Tags: "TagB", Body: []byte("boom")})
	rec := &recorder{}
	startPush(t, topic, func(ctx context.Context, msgs []*mq.Message) mq.ConsumeResult {
		rec.add(msgs)
		if msgs[0].ReconsumeTimes == 0 {
			panic("handler failure (on purpose)")
		}
		return mq.ConsumeSuccess
	})
	waitFor(t, 40*time.Second, "the redelivery after a panic", func() bool {
		return rec.count(func(m *mq.Message) bool { return m.ReconsumeTimes == 1 && string(m.Body) == "boom" }) >= 1
	})
}

// Orderly consumption ("orderly" in the config): one sharding key's
// messages arrive in the order sent.
func TestPushOrderly(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	const n = 20
	for i := range n {
		_, err := p.SendOrdered(ctxFor(t, 10*time.Second), &mq.Message{Topic: topic, Tags: "TagA", Body: []byte(fmt.Sprint(i))}, "order-1")
		if err != nil {
			t.Fatalf("SendOrdered: %v", err)
		}
	}
	rec := &recorder{}
	startPush(t, topic, func(ctx context.Context, msgs []*mq.Message) mq.ConsumeResult {
		rec.add(msgs)
		return mq.ConsumeSuccess
	}, "orderly", "true")
	waitFor(t, 40*time.Second, "every message", func() bool { return len(rec.all()) >= n })
	for i, m := range rec.all()[:n] {
		if string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: out of order", i, m.Body)
		}
	}
}

func filter(msgs []*mq.Message, f func(*mq.Message) bool) []*mq.Message {
	var out []*mq.Message
	for _, m := range msgs {
		if f(m) {
			out = append(out, m)
		}
	}
	return out
}

// Broadcasting ("message_model"): every consumer of the group gets every
// message.
func TestPushBroadcasting(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	send(t, p, &mq.Message{Topic: topic, Tags: "TagA", Body: []byte("first")})
	group := unique(t, "bcast")
	var recs []*recorder
	for i := range 2 {
		rec := &recorder{}
		recs = append(recs, rec)
		c, err := mq.NewPushConsumer(config(group, "message_model", "broadcasting", "consume_from", "first",
			"consume_threads", "2", "offset_dir", t.TempDir(), "instance_name", fmt.Sprintf("bcast-%d", i)))
		if err != nil {
			t.Fatalf("NewPushConsumer: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Subscribe(topic, "*"); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(func(ctx context.Context, msgs []*mq.Message) mq.ConsumeResult {
			rec.add(msgs)
			return mq.ConsumeSuccess
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		send(t, p, &mq.Message{Topic: topic, Tags: "TagA", Body: []byte(fmt.Sprint(i))})
	}
	for i, rec := range recs {
		waitFor(t, 30*time.Second, fmt.Sprintf("consumer %d to see every message", i), func() bool {
			return len(bodies(rec.all())) == 6
		})
	}
}
