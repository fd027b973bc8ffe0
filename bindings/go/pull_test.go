package mq_test

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"mq.dev/mq"
)

// Assign, poll, commit, committed, seek and seek to a timestamp.
func TestPullSeekAndCommit(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	before := time.Now().Add(-time.Second)
	queues := map[mq.Queue][]*mq.SendResult{}
	const n = 12
	for i := range n {
		r := send(t, p, &mq.Message{Topic: topic, Body: []byte(fmt.Sprintf("m-%d", i))})
		q := mq.Queue{Topic: topic, BrokerName: r.BrokerName, QueueID: r.QueueID}
		queues[q] = append(queues[q], r)
	}
	var assign []mq.Queue
	for q := range queues {
		assign = append(assign, q)
	}
	c := newPull(t, "consume_from", "first", "auto_commit", "false")
	ctx := ctxFor(t, 30*time.Second)
	if err := c.Assign(ctx, assign); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	got, err := c.Assignment(ctx)
	if err != nil || len(got) != len(assign) {
		t.Fatalf("Assignment: %v, %v (assigned %v)", got, err, assign)
	}
	all := pollUntil(t, c, 20*time.Second, "every message", func(m []*mq.Message) bool { return len(bodies(m)) == n })
	for _, m := range all {
		if m.Topic != topic || m.QueueOffset < 0 || m.MsgID == "" || m.OffsetMsgID == "" {
			t.Errorf("received fields: %+v", m)
		}
	}
	if err := c.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for q, rs := range queues {
		last := rs[len(rs)-1].QueueOffset
		off, err := c.Committed(ctx, q)
		if err != nil || off != last+1 {
			t.Errorf("Committed(%v) = %d, %v; want %d", q, off, err, last+1)
		}
	}

	// Back to the first message of one queue, by offset, then by time.
	q := assign[0]
	rs := queues[q]
	want := make([]string, len(rs))
	for i, r := range rs {
		want[i] = fmt.Sprint(r.QueueOffset)
	}
	for _, seek := range []func() error{
		func() error { return c.Seek(ctx, q, rs[0].QueueOffset) },
		func() error { return c.SeekToTimestamp(ctx, q, before) },
	} {
		if err := seek(); err != nil {
			t.Fatalf("seek: %v", err)
		}
		again := pollUntil(t, c, 20*time.Second, "the queue again", func(m []*mq.Message) bool {
			return len(offsetsIn(m, q)) >= len(rs)
		})
		if got := offsetsIn(again, q); fmt.Sprint(got[:len(rs)]) != fmt.Sprint(want) {
			t.Errorf("after seek: offsets %v, want %v", got, want)
		}
	}
	if err := c.Seek(ctx, mq.Queue{Topic: topic, BrokerName: q.BrokerName, QueueID: 99}, 0); err == nil {
		t.Error("Seek of a queue not assigned: no error")
	}
}

func offsetsIn(msgs []*mq.Message, q mq.Queue) []string {
	var out []int64
	for _, m := range msgs {
		if m.QueueID == q.QueueID && m.BrokerName == q.BrokerName {
			out = append(out, m.QueueOffset)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	s := make([]string, len(out))
	for i, o := range out {
		s[i] = fmt.Sprint(o)
	}
	return s
}

// Subscribe: the rebalance hands the consumer the topic's queues.
func TestPullSubscribe(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	for i := range 5 {
		send(t, p, &mq.Message{Topic: topic, Tags: "keep", Body: []byte(fmt.Sprint(i))})
		send(t, p, &mq.Message{Topic: topic, Tags: "drop", Body: []byte("dropped")})
	}
	c := newPull(t, "consume_from", "first")
	if err := c.Subscribe(ctxFor(t, 10*time.Second), topic, "keep"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	all := pollUntil(t, c, 20*time.Second, "the kept messages", func(m []*mq.Message) bool { return len(bodies(m)) >= 5 })
	if b := bodies(all); b["dropped"] > 0 {
		t.Errorf("the tag filter let through %v", b)
	}
}

// Bodies are (pointer, length): zero bytes arrive whole, alone and in a
// batch.
func TestBinaryBody(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	body := []byte{0, 'a', 0, 0, 0xff, 0, 'b', 0}
	for i := range 256 {
		body = append(body, byte(i))
	}
	r := send(t, p, &mq.Message{Topic: topic, Body: body})
	batch := []*mq.Message{
		{Topic: topic, Body: []byte{0}},
		{Topic: topic, Body: []byte("x\x00y")},
		{Topic: topic, Body: append([]byte{0, 0, 0}, body...)},
	}
	br, err := p.SendBatch(ctxFor(t, 10*time.Second), batch)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if got := len(bytes.Split([]byte(br.MsgID), []byte(","))); got != 3 {
		t.Errorf("batch MsgID %q: %d ids", br.MsgID, got)
	}
	c := newPull(t, "consume_from", "first")
	ctx := ctxFor(t, 20*time.Second)
	qs := []mq.Queue{{Topic: topic, BrokerName: r.BrokerName, QueueID: r.QueueID}}
	if br.QueueID != r.QueueID {
		qs = append(qs, mq.Queue{Topic: topic, BrokerName: br.BrokerName, QueueID: br.QueueID})
	}
	if err := c.Assign(ctx, qs); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	all := pollUntil(t, c, 20*time.Second, "the binary bodies", func(m []*mq.Message) bool { return len(m) >= 4 })
	want := map[string]int{string(body): 1}
	for _, m := range batch {
		want[string(m.Body)]++
	}
	if got := bodies(all); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bodies arrived as %v, want %v", got, want)
	}
}

// FetchQueues lists a topic's queues for Assign (assign mode without a
// queue from a send result); the user flag travels with each message.
func TestFetchQueuesThenAssignThemAll(t *testing.T) {
	p := newProducer(t)
	topic := unique(t, "t")
	const n = 8
	for i := range n {
		send(t, p, &mq.Message{Topic: topic, Body: []byte(fmt.Sprintf("f-%d", i)), Flag: int32(100 + i)})
	}
	c := newPull(t, "consume_from", "first")
	ctx := ctxFor(t, 20*time.Second)
	// The broker registers a topic that a send created with the NameServers
	// after answering that send (as RocketMQ's does): the route may take a
	// moment to appear.
	queues, err := c.FetchQueues(ctx, topic)
	for errors.Is(err, mq.ErrNoRoute) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		queues, err = c.FetchQueues(ctx, topic)
	}
	if err != nil || len(queues) == 0 {
		t.Fatalf("FetchQueues: %v, %v", queues, err)
	}
	for _, q := range queues {
		if q.Topic != topic || q.BrokerName == "" || q.QueueID < 0 {
			t.Errorf("FetchQueues: queue %+v", q)
		}
	}
	if err := c.Assign(ctx, queues); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	all := pollUntil(t, c, 20*time.Second, "every message", func(m []*mq.Message) bool { return len(bodies(m)) == n })
	for _, m := range all {
		var i int32
		if _, err := fmt.Sscanf(string(m.Body), "f-%d", &i); err != nil || m.Flag != 100+i {
			t.Errorf("message %q has flag %d", m.Body, m.Flag)
		}
	}
	_, err = c.FetchQueues(ctx, unique(t, "none"))
	if !errors.Is(err, mq.ErrNoRoute) {
		t.Errorf("FetchQueues of an unknown topic: %v, want ErrNoRoute", err)
	}
}
