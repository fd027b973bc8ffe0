package mq

/*
#include <stdlib.h>
#include "gomq.h"
*/
import "C"

import (
	"context"
	"time"
	"unsafe"
)

// Queue names one message queue.
type Queue struct {
	Topic      string
	BrokerName string
	QueueID    int32
}

// pollSlice is the longest a Poll waits in libmq before it looks at its
// context again (a cancellation also wakes it at once).
const pollSlice = 200 * time.Millisecond

// PullConsumer is the lite pull consumer: Subscribe (the group's rebalance
// picks the queues) or Assign (exactly these queues), then Poll. What Poll
// returned is committed automatically ("auto_commit", on by default) or by
// Commit. Its methods may be called from any goroutine.
type PullConsumer struct {
	h handle
}

// NewPullConsumer creates and starts a pull consumer; it reads nothing
// until Subscribe or Assign. cfg needs "namesrv_addr" and "group"; also
// "consume_from", "auto_commit", "pull_batch_size" (the most one Poll
// returns), "message_model".
func NewPullConsumer(cfg Config) (*PullConsumer, error) {
	ptr, err := newHandle(C.GOMQ_PULL, cfg)
	if err != nil {
		return nil, err
	}
	return &PullConsumer{h: newHandleOf(C.GOMQ_PULL, "pull consumer", ptr)}, nil
}

// pullCall runs f holding c's read lock, under ctx (see call).
func pullCall[T any](ctx context.Context, c *PullConsumer, f func(p *C.mq_pull_consumer_t) (T, error)) (T, error) {
	return call(ctx, func() (T, error) {
		ptr, err := c.h.acquire()
		if err != nil {
			var zero T
			return zero, err
		}
		defer c.h.mu.RUnlock()
		return f((*C.mq_pull_consumer_t)(ptr))
	}, nil, nil)
}

// locked is pullCall for calls that return only an error.
func (c *PullConsumer) locked(ctx context.Context, f func(p *C.mq_pull_consumer_t) error) error {
	_, err := pullCall(ctx, c, func(p *C.mq_pull_consumer_t) (struct{}, error) {
		return struct{}{}, f(p)
	})
	return err
}

// Subscribe reads topic's messages matching expr ("" means "*"), from the
// queues the group's rebalance gives this consumer. Not with Assign.
func (c *PullConsumer) Subscribe(ctx context.Context, topic, expr string) error {
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
	return c.locked(ctx, func(p *C.mq_pull_consumer_t) error {
		return errOf(C.gomq_pull_subscribe(p, cstr(e.strs[t:]), cstr(e.strs[x:])))
	})
}

// Assign reads exactly queues, replacing an earlier assignment. Not with
// Subscribe.
func (c *PullConsumer) Assign(ctx context.Context, queues []Queue) error {
	e := &encoding{strs: []byte{0}}
	for _, q := range queues {
		t, err := e.str("topic", q.Topic)
		if err != nil {
			return err
		}
		b, err := e.str("broker name", q.BrokerName)
		if err != nil {
			return err
		}
		e.ints = append(e.ints, t, b, int64(q.QueueID))
	}
	e.ints = append(e.ints, 0) // never empty
	return c.locked(ctx, func(p *C.mq_pull_consumer_t) error {
		return errOf(C.gomq_pull_assign(p, e.cStrs(), e.cInts(), C.size_t(len(queues))))
	})
}

// Assignment is the queues the consumer reads now.
func (c *PullConsumer) Assignment(ctx context.Context) ([]Queue, error) {
	return pullCall(ctx, c, func(p *C.mq_pull_consumer_t) ([]Queue, error) {
		return takeQueues(C.gomq_pull_assignment(p))
	})
}

// FetchQueues is the readable queues of topic, from its route as the
// NameServer has it now (Java's fetchMessageQueues): what to choose from
// for Assign. A topic without a route fails with ErrNoRoute.
func (c *PullConsumer) FetchQueues(ctx context.Context, topic string) ([]Queue, error) {
	cTopic := C.CString(topic)
	return pullCall(ctx, c, func(p *C.mq_pull_consumer_t) ([]Queue, error) {
		defer C.free(unsafe.Pointer(cTopic))
		return takeQueues(C.gomq_pull_fetch_queues(p, cTopic))
	})
}

// takeQueues reads and frees the queue list a shim returned.
func takeQueues(r C.gomq_ret) ([]Queue, error) {
	if err := errOf(r); err != nil {
		return nil, err
	}
	l := (*C.mq_queue_list_t)(r.ptr)
	defer C.mq_queue_list_free(l)
	queues := make([]Queue, 0, int(r.val))
	for i := range int(r.val) {
		var topic, broker *C.char
		var id C.int32_t
		if C.mq_queue_list_get(l, C.size_t(i), &topic, &broker, &id) != C.MQ_OK {
			continue
		}
		queues = append(queues, Queue{Topic: goStr(topic), BrokerName: goStr(broker), QueueID: int32(id)})
	}
	return queues, nil
}

// Poll returns the next messages (1 to pull_batch_size, all of one queue),
// waiting until some arrive or ctx ends (then it returns ctx.Err()).
func (c *PullConsumer) Poll(ctx context.Context) ([]*Message, error) {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, c.wakeup)
		defer stop()
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		slice := pollSlice
		if d, ok := ctx.Deadline(); ok {
			slice = min(slice, time.Until(d))
		}
		ms := max(1, C.int32_t((slice+time.Millisecond-1)/time.Millisecond))
		ptr, err := c.h.acquire()
		if err != nil {
			return nil, err
		}
		r := C.gomq_pull_poll((*C.mq_pull_consumer_t)(ptr), ms)
		c.h.mu.RUnlock()
		if err := errOf(r); err != nil {
			return nil, err
		}
		if r.ptr != nil {
			msgs := readMessages(C.GOMQ_SRC_BATCH, r.ptr, int(r.val))
			C.gomq_batch_free(r.ptr)
			if len(msgs) > 0 {
				return msgs, nil
			}
		}
	}
}

// wakeup ends a waiting poll (and so lets a cancelled Poll return now).
func (c *PullConsumer) wakeup() {
	ptr, err := c.h.acquireInternal()
	if err != nil {
		return
	}
	defer c.h.mu.RUnlock()
	_ = errOf(C.gomq_pull_wakeup((*C.mq_pull_consumer_t)(ptr)))
}

// seek moves q's position to an offset or the first message at a time.
func (c *PullConsumer) seek(ctx context.Context, q Queue, value int64, byTime C.int) error {
	e := &encoding{}
	t, err := e.str("topic", q.Topic)
	if err != nil {
		return err
	}
	b, err := e.str("broker name", q.BrokerName)
	if err != nil {
		return err
	}
	return c.locked(ctx, func(p *C.mq_pull_consumer_t) error {
		return errOf(C.gomq_pull_seek(p, cstr(e.strs[t:]), cstr(e.strs[b:]), C.int32_t(q.QueueID),
			C.int64_t(value), byTime))
	})
}

// Seek moves q's position to offset (within the queue's offsets), dropping
// what was buffered. q must be assigned.
func (c *PullConsumer) Seek(ctx context.Context, q Queue, offset int64) error {
	return c.seek(ctx, q, offset, 0)
}

// SeekToTimestamp moves q's position to its first message stored at or
// after t.
func (c *PullConsumer) SeekToTimestamp(ctx context.Context, q Queue, t time.Time) error {
	return c.seek(ctx, q, t.UnixMilli(), 1)
}

// Commit commits, for every assigned queue, the position after what Poll
// returned.
func (c *PullConsumer) Commit(ctx context.Context) error {
	return c.locked(ctx, func(p *C.mq_pull_consumer_t) error {
		return errOf(C.gomq_pull_commit(p))
	})
}

// Committed is the group's committed offset of q, or -1 when there is
// none.
func (c *PullConsumer) Committed(ctx context.Context, q Queue) (int64, error) {
	e := &encoding{}
	t, err := e.str("topic", q.Topic)
	if err != nil {
		return -1, err
	}
	b, err := e.str("broker name", q.BrokerName)
	if err != nil {
		return -1, err
	}
	return pullCall(ctx, c, func(p *C.mq_pull_consumer_t) (int64, error) {
		r := C.gomq_pull_committed(p, cstr(e.strs[t:]), cstr(e.strs[b:]), C.int32_t(q.QueueID))
		if err := errOf(r); err != nil {
			return -1, err
		}
		return int64(r.val), nil
	})
}

// Close closes the consumer: Polls blocked on it return ErrClosed, then
// positions are committed (with auto_commit) and the consumer released.
// Idempotent.
func (c *PullConsumer) Close() error {
	return c.h.close(nil)
}
