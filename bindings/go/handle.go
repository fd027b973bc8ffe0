package mq

/*
#include "gomq.h"
*/
import "C"

import (
	"context"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// handle guards one libmq handle. Calls hold the read lock while they use
// the pointer; Close calls mq_X_close under the read lock (which wakes the
// calls blocked in libmq), waits for the package's own goroutines, then
// takes the write lock and destroys. So no call ever sees a destroyed
// handle, and Close never waits on a call that close would not end.
type handle struct {
	kind C.int
	what string

	mu  sync.RWMutex
	ptr unsafe.Pointer // nil once destroyed

	closing atomic.Bool // Close has begun: new calls fail with ErrClosed
	own     sync.Map    // ids of this handle's own goroutines
}

func newHandleOf(kind C.int, what string, ptr unsafe.Pointer) handle {
	return handle{kind: kind, what: what, ptr: ptr}
}

// acquire read-locks the handle for an application call; release with
// h.mu.RUnlock().
func (h *handle) acquire() (unsafe.Pointer, error) {
	if h.closing.Load() {
		return nil, closedErr(h.what)
	}
	return h.acquireInternal()
}

// acquireInternal is acquire for the package's own goroutines, which keep
// draining (reports, batches) after Close has begun until libmq says
// closed.
func (h *handle) acquireInternal() (unsafe.Pointer, error) {
	h.mu.RLock()
	if h.ptr == nil {
		h.mu.RUnlock()
		return nil, closedErr(h.what)
	}
	return h.ptr, nil
}

// enter marks the calling goroutine as one of the handle's own (a poller
// or worker), so that a Close from a callback it runs does not wait for
// itself.
func (h *handle) enter() uint64 {
	id := goid()
	h.own.Store(id, struct{}{})
	return id
}

func (h *handle) leave(id uint64) { h.own.Delete(id) }

func (h *handle) calledFromOwn() bool {
	_, ok := h.own.Load(goid())
	return ok
}

// close closes and destroys the handle: mq_X_close (waking blocked calls),
// then wait (for the package's goroutines to finish), then destroy under
// the write lock. Idempotent. Called from one of the handle's own
// goroutines (a callback or handler), it does all that on a new goroutine
// and returns at once, since waiting would wait for the caller itself.
func (h *handle) close(wait func()) error {
	first := !h.closing.Swap(true)
	if h.calledFromOwn() {
		if first {
			go h.finish(wait)
		}
		return nil
	}
	return h.finish(wait)
}

func (h *handle) finish(wait func()) error {
	h.mu.RLock()
	p := h.ptr
	var err error
	if p != nil {
		err = errOf(C.gomq_close(h.kind, p))
	}
	h.mu.RUnlock()
	if wait != nil {
		wait()
	}
	h.mu.Lock()
	if h.ptr != nil {
		C.gomq_destroy(h.kind, h.ptr)
		h.ptr = nil
	}
	h.mu.Unlock()
	return err
}

// goid is the calling goroutine's id, from its stack header
// ("goroutine 42 [running]:"). Used only to recognise the handle's own
// goroutines in Close.
func goid() uint64 {
	var buf [40]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 0
	}
	var id uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// timeoutMS is the C timeout of a call under ctx: -1 without a deadline
// (libmq's default), else the time left in ms, rounded up.
func timeoutMS(ctx context.Context) (C.int32_t, error) {
	d, ok := ctx.Deadline()
	if !ok {
		return -1, nil
	}
	left := time.Until(d)
	if left <= 0 {
		return 0, context.DeadlineExceeded
	}
	ms := (left + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxInt32 {
		ms = math.MaxInt32
	}
	return C.int32_t(ms), nil
}

// call runs f (one blocking libmq call) under ctx. With a context that
// cannot be cancelled it runs f here. Otherwise f runs on a helper
// goroutine and call returns ctx.Err() as soon as ctx ends; f then
// finishes on its own and abandon (if not nil) gets what it made. skip
// (if not nil) runs instead of f when ctx had ended before f started.
func call[T any](ctx context.Context, f func() (T, error), abandon func(T), skip func()) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		if skip != nil {
			skip()
		}
		return zero, err
	}
	if ctx.Done() == nil {
		return f()
	}
	type outcome struct {
		v   T
		err error
	}
	done := make(chan outcome, 1)
	var claimed atomic.Bool // set by whichever side finishes first
	go func() {
		v, err := f()
		if claimed.CompareAndSwap(false, true) {
			done <- outcome{v, err}
		} else if abandon != nil && err == nil {
			abandon(v)
		}
	}()
	select {
	case o := <-done:
		return o.v, o.err
	case <-ctx.Done():
		if claimed.CompareAndSwap(false, true) {
			return zero, ctx.Err()
		}
		o := <-done
		return o.v, o.err
	}
}
