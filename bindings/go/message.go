package mq

/*
#include "gomq.h"
*/
import "C"

import (
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Message is a message to send, or one received (then every field is a
// copy made before its batch was settled, so it may be kept freely).
type Message struct {
	// Topic. For a redelivered message, the original topic.
	Topic string
	// Tags is the tag consumers filter on ("" for none).
	Tags string
	// Keys are the keys the broker indexes (no spaces within a key).
	Keys []string
	// Body may hold any bytes, NUL included.
	Body []byte
	// Properties are user properties to send; on a received message, every
	// property, system ones (UNIQ_KEY, ...) included.
	Properties map[string]string
	// DelayLevel delays delivery (1 = 1 s, 2 = 5 s, ... 18 = 2 h; 0 none).
	// Sending only.
	DelayLevel int
	// Flag is the user flag: sent, and read back on received messages.
	Flag int32

	// The fields below are set on received messages only.

	// MsgID is the message id (UNIQ_KEY, else the offset id).
	MsgID string
	// OffsetMsgID is the broker's offset message id.
	OffsetMsgID string
	// BrokerName, QueueID and QueueOffset say where the message is stored.
	BrokerName  string
	QueueID     int32
	QueueOffset int64
	// CommitLogOffset is its offset in the broker's CommitLog.
	CommitLogOffset int64
	// BornTime is when the producer made it, StoreTime when the broker
	// stored it (millisecond precision).
	BornTime  time.Time
	StoreTime time.Time
	// BornHost and StoreHost are the producer's and the broker's addresses.
	BornHost  string
	StoreHost string
	// ReconsumeTimes counts the deliveries before this one (0 at first).
	ReconsumeTimes int32
	// SysFlag is the system flag (compression, transaction bits); received
	// messages only.
	SysFlag int32
}

// Property returns the value of a property ("" when unset).
func (m *Message) Property(name string) string { return m.Properties[name] }

// encoding is messages as gomq.h encodes them: strings packed with NULs,
// integers, and body bytes. It holds no Go pointers, so C may read it.
type encoding struct {
	strs   []byte
	ints   []int64
	bodies []byte
}

func (e *encoding) str(what, s string) (int64, error) {
	if err := noNUL(what, s); err != nil {
		return 0, err
	}
	off := int64(len(e.strs))
	e.strs = append(append(e.strs, s...), 0)
	return off, nil
}

func (e *encoding) optStr(what, s string) (int64, error) {
	if s == "" {
		return -1, nil
	}
	return e.str(what, s)
}

// add appends m; its body goes into bodies at bodyOff (the caller put it
// there, or passes m.Body itself as bodies for a single message).
func (e *encoding) add(m *Message, bodyOff int) error {
	if m == nil {
		return newError(ErrNull, "message is nil", 0)
	}
	topic, err := e.str("topic", m.Topic)
	if err != nil {
		return err
	}
	tags, err := e.optStr("tags", m.Tags)
	if err != nil {
		return err
	}
	for _, k := range m.Keys {
		if strings.ContainsAny(k, " \x00") {
			return invalidArg("key " + k + " contains a space or a NUL byte")
		}
	}
	keys, err := e.optStr("keys", strings.Join(m.Keys, " "))
	if err != nil {
		return err
	}
	e.ints = append(e.ints, topic, tags, keys, int64(m.DelayLevel), int64(bodyOff),
		int64(len(m.Body)), int64(len(m.Properties)), int64(m.Flag))
	for k, v := range m.Properties {
		name, err := e.str("property name", k)
		if err != nil {
			return err
		}
		value, err := e.str("property "+k, v)
		if err != nil {
			return err
		}
		e.ints = append(e.ints, name, value)
	}
	return nil
}

// encodeOne encodes a single message; its body stays m.Body (not copied).
func encodeOne(m *Message) (*encoding, error) {
	e := &encoding{strs: make([]byte, 0, 64), ints: make([]int64, 0, 8)}
	if err := e.add(m, 0); err != nil {
		return nil, err
	}
	e.bodies = m.Body
	return e, nil
}

// scratch is what one call passes to C, reused across calls (C keeps none
// of it): a message's encoding and room for a send result's strings.
type scratch struct {
	enc encoding
	buf [resultBuf]byte
}

var scratches = sync.Pool{New: func() any {
	return &scratch{enc: encoding{strs: make([]byte, 0, 128), ints: make([]int64, 0, 16)}}
}}

// encodeScratch encodes m into a scratch from the pool; release it with
// putScratch once C is done with it.
func encodeScratch(m *Message) (*scratch, error) {
	s := scratches.Get().(*scratch)
	s.enc.strs, s.enc.ints = s.enc.strs[:0], s.enc.ints[:0]
	if err := s.enc.add(m, 0); err != nil {
		putScratch(s)
		return nil, err
	}
	s.enc.bodies = m.Body
	return s, nil
}

func putScratch(s *scratch) {
	s.enc.bodies = nil // not the application's body
	if cap(s.enc.strs) <= 64<<10 && cap(s.enc.ints) <= 4<<10 {
		scratches.Put(s)
	}
}

func (e *encoding) cStrs() *C.char { return cstr(e.strs) }

func (e *encoding) cInts() *C.int64_t { return (*C.int64_t)(unsafe.Pointer(&e.ints[0])) }

func (e *encoding) cBodies() *C.uint8_t {
	if len(e.bodies) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&e.bodies[0]))
}

// readMessages copies n received messages out of a batch or check in two
// crossings: every message's view, then every property.
func readMessages(src C.int, obj unsafe.Pointer, n int) []*Message {
	if n == 0 {
		return nil
	}
	views := make([]C.mq_message_view_t, n)
	total := int(C.gomq_read_views(src, obj, &views[0], C.size_t(n)))
	var names, values []*C.char
	if total > 0 {
		names = make([]*C.char, total)
		values = make([]*C.char, total)
		C.gomq_read_props(src, obj, C.size_t(n), &names[0], &values[0], C.size_t(total))
	}
	msgs := make([]*Message, n)
	k := 0
	for i := range views {
		v := &views[i]
		m := &Message{
			Topic:           goStr(v.topic),
			Tags:            goStr(v.tags),
			MsgID:           goStr(v.msg_id),
			OffsetMsgID:     goStr(v.offset_msg_id),
			BrokerName:      goStr(v.broker_name),
			QueueID:         int32(v.queue_id),
			QueueOffset:     int64(v.queue_offset),
			CommitLogOffset: int64(v.commit_log_offset),
			BornHost:        goStr(v.born_host),
			StoreHost:       goStr(v.store_host),
			ReconsumeTimes:  int32(v.reconsume_times),
			Flag:            int32(v.flag),
			SysFlag:         int32(v.sys_flag),
		}
		if v.keys != nil {
			m.Keys = strings.Fields(C.GoString(v.keys))
		}
		if v.body_len > 0 {
			m.Body = C.GoBytes(unsafe.Pointer(v.body), C.int(v.body_len))
		} else {
			m.Body = []byte{}
		}
		if v.born_timestamp != 0 {
			m.BornTime = time.UnixMilli(int64(v.born_timestamp))
		}
		if v.store_timestamp != 0 {
			m.StoreTime = time.UnixMilli(int64(v.store_timestamp))
		}
		count := int(v.property_count)
		m.Properties = make(map[string]string, count)
		for j := 0; j < count && k < total; j, k = j+1, k+1 {
			if names[k] != nil {
				m.Properties[C.GoString(names[k])] = goStr(values[k])
			}
		}
		msgs[i] = m
	}
	return msgs
}

func goStr(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}
