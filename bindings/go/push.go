package mq

/*
#include "gomq.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"
	"sync"
	"time"
)

// ConsumeResult settles a push batch (MQ_CONSUME_*).
type ConsumeResult int32

// The consume results.
const (
	// ConsumeSuccess: the batch was consumed.
	ConsumeSuccess ConsumeResult = C.MQ_CONSUME_SUCCESS
	// ConsumeLater: deliver the batch again later (concurrent mode: through
	// the retry topic, with ReconsumeTimes one higher; orderly mode: the
	// same messages after a pause).
	ConsumeLater ConsumeResult = C.MQ_CONSUME_LATER
)

func (r ConsumeResult) String() string {
	switch r {
	case ConsumeSuccess:
		return "SUCCESS"
	case ConsumeLater:
		return "LATER"
	}
	return fmt.Sprintf("ConsumeResult(%d)", int32(r))
}

// Handler consumes one batch (messages of one queue, at most
// consume_batch_max_size). A panic counts as ConsumeLater. ctx ends when
// the consumer starts closing.
type Handler func(ctx context.Context, msgs []*Message) ConsumeResult

// defaultConsumeThreads is libmq's consume_threads default.
const defaultConsumeThreads = 20

// PushConsumer delivers messages to a Handler run by goroutines it owns.
// Concurrent or orderly ("orderly": "true") and clustering or broadcasting
// ("message_model") are chosen in its Config.
type PushConsumer struct {
	h       handle
	workers int

	mu      sync.Mutex
	started bool
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

// NewPushConsumer creates a push consumer: Subscribe, then Start. cfg
// needs "namesrv_addr" and "group"; its "consume_threads" (default 20) is
// also the number of handler goroutines.
func NewPushConsumer(cfg Config) (*PushConsumer, error) {
	workers := defaultConsumeThreads
	for _, key := range []string{"consume_threads", "consumeThreadMax"} {
		if v, ok := cfg[key]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, newError(ErrConfig, fmt.Sprintf("config key %q: %q is not a whole number from 1", key, v), 0)
			}
			workers = n
		}
	}
	ptr, err := newHandle(C.GOMQ_PUSH, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &PushConsumer{
		h:       newHandleOf(C.GOMQ_PUSH, "push consumer", ptr),
		workers: workers,
		ctx:     ctx,
		cancel:  cancel,
	}, nil
}

// Subscribe subscribes to topic with a tag expression ("*", "TagA || TagB";
// "" means "*"). Before Start only.
func (c *PushConsumer) Subscribe(topic, expr string) error {
	if expr == "" {
		expr = "*"
	}
	e := &encoding{}
	t, err := e.str("topic", topic)
	if err != nil {
		return err
	}
	x, err := e.str("expression", expr)
	if err != nil {
		return err
	}
	ptr, err := c.h.acquire()
	if err != nil {
		return err
	}
	defer c.h.mu.RUnlock()
	return errOf(C.gomq_push_subscribe((*C.mq_push_consumer_t)(ptr), cstr(e.strs[t:]), cstr(e.strs[x:])))
}

// Start starts consuming: handler runs on the consumer's goroutines until
// Close.
func (c *PushConsumer) Start(handler Handler) error {
	if handler == nil {
		return newError(ErrNull, "handler is nil", 0)
	}
	ptr, err := c.h.acquire()
	if err != nil {
		return err
	}
	defer c.h.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return newError(ErrState, "the push consumer is started already", 0)
	}
	if err := errOf(C.gomq_push_start((*C.mq_push_consumer_t)(ptr))); err != nil {
		return err
	}
	c.started = true
	c.wg.Add(c.workers)
	for range c.workers {
		go c.work(handler)
	}
	return nil
}

// work is one handler goroutine: poll a batch, copy it, run the handler,
// ack; until libmq says closed.
func (c *PushConsumer) work(handler Handler) {
	defer c.wg.Done()
	id := c.h.enter()
	defer c.h.leave(id)
	for {
		ptr, err := c.h.acquireInternal()
		if err != nil {
			return
		}
		r := C.gomq_push_poll((*C.mq_push_consumer_t)(ptr), -1)
		c.h.mu.RUnlock()
		if err := errOf(r); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			log.Printf("mq: push consumer poll: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if r.ptr == nil {
			continue
		}
		msgs := readMessages(C.GOMQ_SRC_BATCH, r.ptr, int(r.val))
		result := ConsumeLater
		if runCallback("a push handler (the batch counts as LATER)", func() { result = handler(c.ctx, msgs) }) {
			result = ConsumeLater
		}
		if result != ConsumeSuccess {
			result = ConsumeLater
		}
		// A late ack (after consume_timeout_ms, or close_timeout_ms into a
		// close) already counted as LATER; nothing more to do.
		_ = errOf(C.gomq_batch_ack(r.ptr, C.int32_t(result)))
	}
}

// Close stops consuming: the handler's ctx ends, batches not yet handed out
// count as LATER, the handlers running get close_timeout_ms (30 s) to
// finish; then offsets are committed and the consumer released. Idempotent.
// From within a handler it only starts closing, and returns at once.
func (c *PushConsumer) Close() error {
	c.cancel()
	return c.h.close(func() {
		// Start adds its workers under c.mu: after this, none is added.
		c.mu.Lock()
		c.mu.Unlock() //nolint:staticcheck // a barrier
		c.wg.Wait()
	})
}
