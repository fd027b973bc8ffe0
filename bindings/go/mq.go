// Package mq is the Go binding of libmq, the C ABI of mq (a
// RocketMQ-compatible message queue): producers (sync, async, one-way,
// batch, ordered), the transactional producer, and push and pull consumers.
//
// # Building
//
// The package uses cgo. It includes mq.h from ${SRCDIR}/../../include (the
// repository's include directory) and links -lmq, searching
// ${SRCDIR}/../../target/debug by default. Point it elsewhere with the
// usual cgo variables, which come first on the command line:
//
//	CGO_CFLAGS=-I/usr/local/include CGO_LDFLAGS=-L/usr/local/lib go build
//
// At run time the dynamic loader must find libmq.so.1: install it on the
// system library path, or set LD_LIBRARY_PATH (bindings/go/Makefile does,
// for the tests).
//
// # Threads and blocking
//
// libmq never calls Go code: async-send outcomes, push batches and
// transaction check-backs are fetched by goroutines this package owns,
// which run the callbacks and handlers. Every blocking call takes a
// context.Context: its deadline becomes the call's timeout, and a
// cancellation makes the call return ctx.Err() promptly (a send already on
// its way may still be stored). Close is idempotent and safe while other
// goroutines are blocked in calls on the same object; they return
// ErrClosed.
//
// # Errors
//
// Failures are *Error values carrying libmq's status code, its name and the
// detail; errors.Is matches them against the Err* sentinels (and
// ErrTimeout also matches context.DeadlineExceeded).
package mq

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/debug -lmq
#include <stdlib.h>
#include "gomq.h"
*/
import "C"

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// Version is the libmq version linked at run time, such as "0.1.0".
func Version() string {
	return C.GoString(C.mq_version_str())
}

// The header this package was compiled against.
const (
	headerMajor = C.MQ_VERSION_MAJOR
	headerMinor = C.MQ_VERSION_MINOR
)

var versionErr = sync.OnceValue(func() error {
	v := uint32(C.mq_version())
	major, minor := v>>16, (v>>8)&0xff
	if major != headerMajor || minor < headerMinor {
		return &Error{
			Code: ErrState,
			Name: ErrState.name(),
			Message: fmt.Sprintf("libmq %s is linked, but this package was built against mq.h %d.%d",
				Version(), headerMajor, headerMinor),
		}
	}
	return nil
})

// Config holds libmq configuration keys and values: the Rust client's field
// names ("namesrv_addr", "group", "send_timeout_ms", "consume_from",
// "message_model", "orderly", "consume_threads", ...) or their Java names
// ("namesrvAddr", ...). Each constructor copies it. An unknown key or a bad
// value fails with ErrConfig naming the key.
type Config map[string]string

// pack encodes the config as key\0value\0 pairs, in key order.
func (c Config) pack() ([]byte, int, error) {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf []byte
	for _, k := range keys {
		if err := noNUL("config key", k); err != nil {
			return nil, 0, err
		}
		if err := noNUL("config value of "+k, c[k]); err != nil {
			return nil, 0, err
		}
		buf = append(append(append(append(buf, k...), 0), c[k]...), 0)
	}
	buf = append(buf, 0) // never empty
	return buf, len(keys), nil
}

// newHandle creates a libmq handle of kind from cfg.
func newHandle(kind C.int, cfg Config) (unsafe.Pointer, error) {
	if err := versionErr(); err != nil {
		return nil, err
	}
	kv, n, err := cfg.pack()
	if err != nil {
		return nil, err
	}
	r := C.gomq_new(kind, cstr(kv), C.size_t(n))
	if err := errOf(r); err != nil {
		return nil, err
	}
	return r.ptr, nil
}

// cstr is the address of b's first byte, for C (b has no Go pointers in it).
func cstr(b []byte) *C.char {
	return (*C.char)(unsafe.Pointer(&b[0]))
}

// noNUL refuses strings C would cut short.
func noNUL(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return invalidArg(what + " contains a NUL byte")
	}
	return nil
}
