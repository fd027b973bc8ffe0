package mq

/*
#include <stdlib.h>
#include "gomq.h"
*/
import "C"

import (
	"context"
	"strings"
	"sync"
	"unsafe"
)

// Status is a libmq status code (mq_status_t). The numbers come from mq.h
// and are never renumbered; the names come from mq_status_name. A Status
// is an error, so the sentinels below work with errors.Is.
type Status int32

// The sentinel errors, one per status in mq.h.
const (
	ErrNull       Status = C.MQ_ERR_NULL
	ErrInvalidArg Status = C.MQ_ERR_INVALID_ARG
	ErrConfig     Status = C.MQ_ERR_CONFIG
	ErrTimeout    Status = C.MQ_ERR_TIMEOUT
	ErrTransport  Status = C.MQ_ERR_TRANSPORT
	ErrBroker     Status = C.MQ_ERR_BROKER
	ErrNoRoute    Status = C.MQ_ERR_NO_ROUTE
	ErrNoNamesrv  Status = C.MQ_ERR_NO_NAMESRV
	ErrDecode     Status = C.MQ_ERR_DECODE
	ErrClosed     Status = C.MQ_ERR_CLOSED
	ErrState      Status = C.MQ_ERR_STATE
	ErrQueueFull  Status = C.MQ_ERR_QUEUE_FULL
	ErrForked     Status = C.MQ_ERR_FORKED
	ErrIO         Status = C.MQ_ERR_IO
	ErrUnknown    Status = C.MQ_ERR_UNKNOWN
	ErrPanic      Status = C.MQ_ERR_PANIC
)

var names sync.Map // Status -> string

// name is libmq's name of the status ("MQ_ERR_TIMEOUT").
func (s Status) name() string {
	if n, ok := names.Load(s); ok {
		return n.(string)
	}
	n := C.GoString(C.mq_status_name(C.mq_status_t(s)))
	names.Store(s, n)
	return n
}

// Error is the status's name.
func (s Status) Error() string { return s.name() }

// String is the status's name.
func (s Status) String() string { return s.name() }

// Is makes ErrTimeout match context.DeadlineExceeded as well.
func (s Status) Is(target error) bool {
	return s == ErrTimeout && target == context.DeadlineExceeded
}

// Error is a failure reported by libmq (or by this package, with the
// status libmq would have used).
type Error struct {
	// Code is the status.
	Code Status
	// Name is the status's name from mq_status_name ("MQ_ERR_NO_ROUTE").
	Name string
	// Message is the detail (mq_last_error without the name).
	Message string
	// BrokerCode is the broker's response code when Code is ErrBroker.
	BrokerCode int32
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "mq: " + e.Name
	}
	return "mq: " + e.Name + ": " + e.Message
}

// Unwrap returns the status, so that errors.Is(err, mq.ErrTimeout) holds.
func (e *Error) Unwrap() error { return e.Code }

func newError(code Status, detail string, brokerCode int32) *Error {
	name := code.name()
	return &Error{
		Code:       code,
		Name:       name,
		Message:    strings.TrimPrefix(detail, name+": "),
		BrokerCode: brokerCode,
	}
}

// errOf turns a shim's outcome into an error (freeing its detail).
func errOf(r C.gomq_ret) error {
	if r.status == C.MQ_OK {
		return nil
	}
	var detail string
	if r.err != nil {
		detail = C.GoString(r.err)
		C.free(unsafe.Pointer(r.err))
	}
	return newError(Status(r.status), detail, int32(r.broker_code))
}

func closedErr(what string) error {
	return newError(ErrClosed, "the "+what+" is closed", 0)
}

func invalidArg(detail string) error {
	return newError(ErrInvalidArg, detail, 0)
}
