package mq

/*
#include <stdlib.h>
#include "gomq.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// SendStatus is how the broker stored a message (MQ_SEND_*).
type SendStatus int32

// The send statuses.
const (
	SendOK                SendStatus = C.MQ_SEND_OK
	SendFlushDiskTimeout  SendStatus = C.MQ_SEND_FLUSH_DISK_TIMEOUT
	SendFlushSlaveTimeout SendStatus = C.MQ_SEND_FLUSH_SLAVE_TIMEOUT
	SendSlaveNotAvailable SendStatus = C.MQ_SEND_SLAVE_NOT_AVAILABLE
)

func (s SendStatus) String() string {
	switch s {
	case SendOK:
		return "SEND_OK"
	case SendFlushDiskTimeout:
		return "FLUSH_DISK_TIMEOUT"
	case SendFlushSlaveTimeout:
		return "FLUSH_SLAVE_TIMEOUT"
	case SendSlaveNotAvailable:
		return "SLAVE_NOT_AVAILABLE"
	}
	return fmt.Sprintf("SendStatus(%d)", int32(s))
}

// SendResult is how a message (or batch) was stored.
type SendResult struct {
	Status SendStatus
	// MsgID is the id consumers see; for a batch, the ids joined by commas.
	MsgID string
	// OffsetMsgID is the broker's offset message id (comma-joined for a
	// batch).
	OffsetMsgID string
	// Topic, BrokerName and QueueID name the queue; QueueOffset is the
	// message's offset there (the first message's, for a batch).
	Topic       string
	BrokerName  string
	QueueID     int32
	QueueOffset int64
	// TransactionID is set for a half message.
	TransactionID string
}

// resultBuf is the room a send result's strings get before libmq falls
// back to a C allocation.
const resultBuf = 256

// resultOf reads the result a shim returned (strings in buf or in big).
func resultOf(s *C.gomq_send_ret, buf []byte) *SendResult {
	total := 0
	for _, n := range s.lens {
		if n > 0 {
			total += int(n)
		}
	}
	src := buf
	if s.big != nil {
		src = unsafe.Slice((*byte)(unsafe.Pointer(s.big)), total)
	}
	var strs [5]string
	at := 0
	for i, n := range s.lens {
		if n > 0 {
			strs[i] = string(src[at : at+int(n)])
			at += int(n)
		}
	}
	if s.big != nil {
		C.free(unsafe.Pointer(s.big))
	}
	return &SendResult{
		Status:        SendStatus(s.send_status),
		MsgID:         strs[0],
		OffsetMsgID:   strs[1],
		Topic:         strs[2],
		BrokerName:    strs[3],
		QueueID:       int32(s.queue_id),
		QueueOffset:   int64(s.queue_offset),
		TransactionID: strs[4],
	}
}

// sendOutcome is a send's result or error; a failed send has no result.
func sendOutcome(s *C.gomq_send_ret, buf []byte, withResult bool) (*SendResult, error) {
	if err := errOf(s.r); err != nil {
		if s.big != nil {
			C.free(unsafe.Pointer(s.big))
		}
		return nil, err
	}
	if !withResult {
		return nil, nil
	}
	return resultOf(s, buf), nil
}

// Producer sends messages. All its methods may be called from any
// goroutine at once.
type Producer struct {
	h handle
	// Send may go through the report queue: mq_producer_send_async retries
	// as mq_producer_send does (the two retry settings agree).
	sendViaReports bool

	mu      sync.Mutex             // guards the async state below
	pending map[uint64]pendingSend // sends whose report has not come
	token   uint64                 // the last token handed out
	async   int                    // SendAsync calls whose callback has not run
	idle    chan struct{}          // closed when async drops to 0; nil then
	poller  chan struct{}          // closed when the report poller has exited
	wake    *os.File               // read end of the pipe libmq signals; nil: none
	wakeFd  int                    // its write end, given to libmq
	cbs     *callbackQueue         // runs SendAsync callbacks in report order
	stopped bool                   // Close has taken the async state over
}

// callback is where an async send's outcome goes.
type callback = func(*SendResult, error)

// pendingSend is who waits for a report: a SendAsync callback (queued on
// cbs) or a Send blocked on done.
type pendingSend struct {
	cb   callback
	done chan sendReport
}

// sendReport is a send's outcome.
type sendReport struct {
	res *SendResult
	err error
}

// reportChans recycles the channels Send waits on (each gets exactly one
// report per use).
var reportChans = sync.Pool{New: func() any { return make(chan sendReport, 1) }}

// NewProducer creates and starts a producer. cfg needs "namesrv_addr" and
// "group"; see Config.
func NewProducer(cfg Config) (*Producer, error) {
	ptr, err := newHandle(C.GOMQ_PRODUCER, cfg)
	if err != nil {
		return nil, err
	}
	return &Producer{
		h:              newHandleOf(C.GOMQ_PRODUCER, "producer", ptr),
		sendViaReports: retriesAgree(cfg),
		pending:        make(map[uint64]pendingSend),
	}, nil
}

// retriesAgree says whether cfg gives sync and async sends the same number
// of retries, under either name libmq takes for each key (both unset: the
// same default). When unsure (a key set under both names) it says no, and
// Send keeps the blocking call, whose retries are the sync ones.
func retriesAgree(cfg Config) bool {
	setting := func(names ...string) (string, bool) {
		value, seen := "", false
		for _, name := range names {
			v, ok := cfg[name]
			if !ok {
				continue
			}
			if seen && v != value {
				return "", false
			}
			value, seen = v, true
		}
		return value, true
	}
	syncRetries, ok1 := setting("retry_times_when_send_failed", "retryTimesWhenSendFailed")
	asyncRetries, ok2 := setting("retry_times_when_send_async_failed", "retryTimesWhenSendAsyncFailed")
	return ok1 && ok2 && syncRetries == asyncRetries
}

// Send sends msg and waits for the broker (retrying on another broker):
// until ctx's deadline, or the producer's send_timeout_ms without one.
// With a context that cannot be cancelled (context.Background) it waits in
// Go, not in a cgo call: the send starts in one short call and its report
// comes back through the producer's poller.
func (p *Producer) Send(ctx context.Context, msg *Message) (*SendResult, error) {
	return p.send(ctx, C.GOMQ_SEND_SYNC, msg, nil)
}

// SendOrdered sends msg to the queue shardingKey hashes to, so that
// messages with one key are stored (and consumed by an orderly consumer) in
// order.
func (p *Producer) SendOrdered(ctx context.Context, msg *Message, shardingKey string) (*SendResult, error) {
	return p.send(ctx, C.GOMQ_SEND_ORDERED, msg, &shardingKey)
}

// SendOneway sends msg without waiting for the broker's answer.
func (p *Producer) SendOneway(ctx context.Context, msg *Message) error {
	_, err := p.send(ctx, C.GOMQ_SEND_ONEWAY, msg, nil)
	return err
}

func (p *Producer) send(ctx context.Context, mode C.int, msg *Message, key *string) (*SendResult, error) {
	sc, err := encodeScratch(msg)
	if err != nil {
		return nil, err
	}
	defer putScratch(sc)
	e := &sc.enc
	keyOff := int64(-1)
	if key != nil {
		if keyOff, err = e.str("sharding key", *key); err != nil {
			return nil, err
		}
	}
	timeout, err := timeoutMS(ctx)
	if err != nil {
		return nil, err
	}
	withResult := mode != C.GOMQ_SEND_ONEWAY
	if ctx.Done() == nil {
		ptr, err := p.h.acquire()
		if err != nil {
			return nil, err
		}
		if mode == C.GOMQ_SEND_SYNC && p.sendViaReports {
			res, blocking, err := p.sendReported(ptr, e)
			if !blocking {
				return res, err
			}
			if ptr, err = p.h.acquire(); err != nil {
				return nil, err
			}
		}
		// One crossing: build, send, read the result, free.
		buf := sc.buf[:]
		s := C.gomq_send((*C.mq_producer_t)(ptr), mode, e.cStrs(), e.cInts(), e.cBodies(),
			C.int64_t(keyOff), timeout, cstr(buf), C.size_t(len(buf)))
		p.h.mu.RUnlock()
		return sendOutcome(&s, buf, withResult)
	}
	// Cancellable: build the C message here (msg is not read after Send
	// returns), send on a helper goroutine.
	b := C.gomq_message_build(e.cStrs(), e.cInts(), e.cBodies())
	if err := errOf(b); err != nil {
		return nil, err
	}
	m := (*C.mq_message_t)(b.ptr)
	var cKey *C.char
	if key != nil {
		cKey = C.CString(*key)
	}
	free := func() {
		C.gomq_message_free(unsafe.Pointer(m))
		C.free(unsafe.Pointer(cKey))
	}
	return call(ctx, func() (*SendResult, error) {
		defer free()
		ptr, err := p.h.acquire()
		if err != nil {
			return nil, err
		}
		defer p.h.mu.RUnlock()
		buf := make([]byte, resultBuf)
		s := C.gomq_send_built((*C.mq_producer_t)(ptr), mode, m, cKey, timeout, cstr(buf),
			C.size_t(len(buf)))
		return sendOutcome(&s, buf, withResult)
	}, nil, free)
}

// sendReported sends as mq_producer_send would, but returns at once from
// libmq and waits for the report here, in Go: a goroutine blocked in a cgo
// call holds an OS thread and, until the runtime takes it back, its P, so
// sixteen goroutines blocked in sends kept the others from running (63 %
// of mqctl's throughput). It releases the handle's read lock that ptr was
// acquired under. blocking says the in-flight window is full: the caller
// then sends the blocking way.
func (p *Producer) sendReported(ptr unsafe.Pointer, e *encoding) (res *SendResult, blocking bool, err error) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		p.h.mu.RUnlock()
		return nil, false, closedErr(p.h.what)
	}
	p.token++
	token := p.token
	ch := reportChans.Get().(chan sendReport)
	p.pending[token] = pendingSend{done: ch}
	p.startPollerLocked(ptr)
	p.mu.Unlock()
	r := C.gomq_send_async((*C.mq_producer_t)(ptr), e.cStrs(), e.cInts(), e.cBodies(),
		C.uint64_t(token))
	p.h.mu.RUnlock()
	if err := errOf(r); err != nil {
		p.mu.Lock()
		delete(p.pending, token)
		p.mu.Unlock()
		reportChans.Put(ch)
		return nil, errors.Is(err, ErrQueueFull), err
	}
	rep := <-ch
	reportChans.Put(ch)
	return rep.res, false, rep.err
}

// SendBatch sends messages of one topic as one request (consecutive
// offsets in one queue). The result's ids are comma-joined.
func (p *Producer) SendBatch(ctx context.Context, msgs []*Message) (*SendResult, error) {
	if len(msgs) == 0 {
		return nil, invalidArg("an empty batch")
	}
	e := &encoding{}
	for _, m := range msgs {
		if m == nil {
			return nil, newError(ErrNull, "a message of the batch is nil", 0)
		}
		off := len(e.bodies)
		e.bodies = append(e.bodies, m.Body...)
		if err := e.add(m, off); err != nil {
			return nil, err
		}
	}
	timeout, err := timeoutMS(ctx)
	if err != nil {
		return nil, err
	}
	// e is this call's own copy: the helper may read it after we return.
	return call(ctx, func() (*SendResult, error) {
		ptr, err := p.h.acquire()
		if err != nil {
			return nil, err
		}
		defer p.h.mu.RUnlock()
		buf := make([]byte, resultBuf)
		s := C.gomq_send_batch((*C.mq_producer_t)(ptr), e.cStrs(), e.cInts(), C.size_t(len(msgs)),
			e.cBodies(), timeout, cstr(buf), C.size_t(len(buf)))
		return sendOutcome(&s, buf, true)
	}, nil, nil)
}

// SendAsync sends msg in the background and returns at once. callback
// runs exactly once, on a goroutine the producer owns (one callback at a
// time, in the order the outcomes arrive), with the result or the error;
// Close runs the callbacks still pending, with ErrClosed if their outcome
// never came. A full in-flight window (max_inflight_async) fails with
// ErrQueueFull without blocking, and then callback does not run.
func (p *Producer) SendAsync(msg *Message, cb func(*SendResult, error)) error {
	if cb == nil {
		cb = func(*SendResult, error) {}
	}
	sc, err := encodeScratch(msg)
	if err != nil {
		return err
	}
	defer putScratch(sc)
	e := &sc.enc
	ptr, err := p.h.acquire()
	if err != nil {
		return err
	}
	defer p.h.mu.RUnlock()

	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return closedErr(p.h.what)
	}
	p.token++
	token := p.token
	p.pending[token] = pendingSend{cb: cb}
	p.async++
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	p.startPollerLocked(ptr)
	p.mu.Unlock()

	r := C.gomq_send_async((*C.mq_producer_t)(ptr), e.cStrs(), e.cInts(), e.cBodies(),
		C.uint64_t(token))
	if err := errOf(r); err != nil {
		p.mu.Lock()
		delete(p.pending, token)
		p.settledLocked()
		p.mu.Unlock()
		return err
	}
	return nil
}

// settledLocked counts a SendAsync callback as run.
func (p *Producer) settledLocked() {
	p.async--
	if p.async == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// startPollerLocked starts the report poller once (p.mu held, ptr read
// locked). It waits for libmq's signals on a pipe in Go's netpoller, so
// that no goroutine sits in a blocking cgo call; without a pipe (no
// descriptors left) it waits in libmq.
func (p *Producer) startPollerLocked(ptr unsafe.Pointer) {
	if p.poller != nil {
		return
	}
	p.poller = make(chan struct{})
	p.cbs = newCallbackQueue(&p.h)
	var fds [2]int
	if syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC) == nil {
		if C.mq_producer_set_report_fd((*C.mq_producer_t)(ptr), C.int32_t(fds[1])) == C.MQ_OK {
			p.wake = os.NewFile(uintptr(fds[0]), "mq report signals")
			p.wakeFd = fds[1]
		} else {
			syscall.Close(fds[0])
			syscall.Close(fds[1])
		}
	}
	go p.pollReports(p.poller, p.wake)
}

// pollReports is the producer's own goroutine: it takes reports (a burst
// per crossing) and hands them over until libmq says closed: to a
// blocked Send directly, SendAsync callbacks to another goroutine (cbs),
// so that a slow one does not hold up taking reports, which is what frees
// the in-flight window. With wake it takes what is queued, then waits for
// libmq's signal in the netpoller; without, it waits in libmq.
func (p *Producer) pollReports(done chan struct{}, wake *os.File) {
	defer close(done)
	if wake == nil {
		p.pollReportsBlocking()
		return
	}
	const burst = 16
	var outs [burst]C.gomq_send_ret
	buf := make([]byte, burst*resultBuf)
	var signals [64]byte
	for {
		ptr, err := p.h.acquireInternal()
		if err != nil {
			return
		}
		var status C.int32_t
		n := int(C.gomq_producer_take_reports((*C.mq_producer_t)(ptr), &outs[0], burst,
			cstr(buf), resultBuf, &status))
		p.h.mu.RUnlock()
		for i := range n {
			res, err := sendOutcome(&outs[i], buf[i*resultBuf:(i+1)*resultBuf], true)
			p.deliver(uint64(outs[i].token), res, err)
		}
		if n == burst {
			continue
		}
		if status != C.MQ_OK {
			return // closed, and every report taken
		}
		if _, err := wake.Read(signals[:]); err != nil {
			// The pipe is unusable (it is ours and still open): wait in
			// libmq from now on.
			log.Printf("mq: reading the report pipe: %v", err)
			p.pollReportsBlocking()
			return
		}
	}
}

// pollReportsBlocking takes reports one crossing each, waiting in libmq,
// until libmq says closed.
func (p *Producer) pollReportsBlocking() {
	buf := make([]byte, resultBuf)
	for {
		ptr, err := p.h.acquireInternal()
		if err != nil {
			return
		}
		s := C.gomq_producer_poll_take((*C.mq_producer_t)(ptr), -1, cstr(buf), C.size_t(len(buf)))
		p.h.mu.RUnlock()
		if s.token == 0 { // no report
			if errOf(s.r) != nil {
				return // closed, and every report taken
			}
			continue
		}
		res, err := sendOutcome(&s, buf, true)
		p.deliver(uint64(s.token), res, err)
	}
}

// deliver hands token's outcome to whoever waits for it.
func (p *Producer) deliver(token uint64, res *SendResult, err error) {
	p.mu.Lock()
	w, ok := p.pending[token]
	delete(p.pending, token)
	p.mu.Unlock()
	switch {
	case !ok:
	case w.done != nil:
		w.done <- sendReport{res, err}
	default:
		p.queue(w.cb, res, err)
	}
}

func (p *Producer) queue(cb callback, res *SendResult, err error) {
	p.cbs.push(func() {
		runCallback("an async-send callback", func() { cb(res, err) })
		p.mu.Lock()
		p.settledLocked()
		p.mu.Unlock()
	})
}

// runCallback runs application code on one of the package's goroutines; a
// panic is logged, not let loose on a goroutine the application does not
// own.
func runCallback(what string, f func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("mq: %s panicked: %v", what, r)
			panicked = true
		}
	}()
	f()
	return false
}

// callbackQueue runs functions one at a time, in order, on a goroutine of
// its own, without ever blocking the one that pushes them.
type callbackQueue struct {
	mu     sync.Mutex
	fs     []func()
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

func newCallbackQueue(h *handle) *callbackQueue {
	q := &callbackQueue{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run(h)
	return q
}

func (q *callbackQueue) push(f func()) {
	q.mu.Lock()
	q.fs = append(q.fs, f)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *callbackQueue) run(h *handle) {
	defer close(q.done)
	id := h.enter()
	defer h.leave(id)
	for {
		q.mu.Lock()
		fs, closed := q.fs, q.closed
		q.fs = nil
		q.mu.Unlock()
		for _, f := range fs {
			f()
		}
		if closed && len(fs) == 0 {
			return
		}
		if len(fs) == 0 {
			<-q.wake
		}
	}
}

// close runs what is queued and stops the goroutine; it waits for it.
func (q *callbackQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}

// Flush waits until the callback of every SendAsync so far has run, or
// ctx ends. Not from within a callback (it would wait for itself).
func (p *Producer) Flush(ctx context.Context) error {
	if p.h.calledFromOwn() {
		return newError(ErrState, "Flush from an async-send callback would wait for itself", 0)
	}
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes async sends (up to close_timeout_ms), runs their
// callbacks, and releases the producer. Calls blocked on it return
// ErrClosed; later calls fail with ErrClosed. Idempotent. From within an
// async callback it only starts closing, and returns at once.
func (p *Producer) Close() error {
	return p.h.close(func() {
		p.mu.Lock()
		p.stopped = true // no async send starts from now on
		poller := p.poller
		p.mu.Unlock()
		if poller == nil {
			return
		}
		<-poller
		if p.wake != nil {
			// libmq must not write the descriptor once it is closed (its
			// number may be reused).
			if ptr, err := p.h.acquireInternal(); err == nil {
				C.mq_producer_set_report_fd((*C.mq_producer_t)(ptr), -1)
				p.h.mu.RUnlock()
			}
			p.wake.Close()
			syscall.Close(p.wakeFd)
		}
		// Outcomes that never came (dropped after close_timeout_ms).
		p.mu.Lock()
		left := p.pending
		p.pending = make(map[uint64]pendingSend)
		p.mu.Unlock()
		for _, w := range left {
			if w.done != nil {
				w.done <- sendReport{nil, closedErr(p.h.what)}
			} else {
				p.queue(w.cb, nil, closedErr(p.h.what))
			}
		}
		p.cbs.close()
	})
}
