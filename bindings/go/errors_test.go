package mq_test

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mq.dev/mq"
)

// Every status in mq.h has a sentinel with its number and libmq's name, so
// the table is never mirrored by hand (and a new status fails here until it
// gets one).
func TestSentinelsMatchTheHeader(t *testing.T) {
	sentinels := map[string]mq.Status{
		"NULL": mq.ErrNull, "INVALID_ARG": mq.ErrInvalidArg, "CONFIG": mq.ErrConfig,
		"TIMEOUT": mq.ErrTimeout, "TRANSPORT": mq.ErrTransport, "BROKER": mq.ErrBroker,
		"NO_ROUTE": mq.ErrNoRoute, "NO_NAMESRV": mq.ErrNoNamesrv, "DECODE": mq.ErrDecode,
		"CLOSED": mq.ErrClosed, "STATE": mq.ErrState, "QUEUE_FULL": mq.ErrQueueFull,
		"FORKED": mq.ErrForked, "IO": mq.ErrIO, "UNKNOWN": mq.ErrUnknown, "PANIC": mq.ErrPanic,
	}
	header, err := os.ReadFile("../../include/mq.h")
	if err != nil {
		t.Fatalf("read mq.h: %v", err)
	}
	defs := regexp.MustCompile(`(?m)^#define MQ_ERR_([A-Z_]+) (\d+)$`).FindAllStringSubmatch(string(header), -1)
	if len(defs) == 0 {
		t.Fatal("no MQ_ERR_ defines in mq.h")
	}
	for _, d := range defs {
		n, _ := strconv.Atoi(d[2])
		s, ok := sentinels[d[1]]
		if !ok {
			t.Errorf("MQ_ERR_%s (%d) has no sentinel in package mq", d[1], n)
			continue
		}
		if int(s) != n {
			t.Errorf("MQ_ERR_%s is %d in mq.h, %d in Go", d[1], n, s)
		}
		if s.Error() != "MQ_ERR_"+d[1] {
			t.Errorf("mq_status_name(%d) = %q", n, s.Error())
		}
	}
	if len(defs) != len(sentinels) {
		t.Errorf("mq.h has %d statuses, package mq %d sentinels", len(defs), len(sentinels))
	}
	if !strings.HasPrefix(mq.Version(), "0.") {
		t.Errorf("Version() = %q", mq.Version())
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := mq.NewProducer(mq.Config{"namesrv_addr": namesrv, "group": "g", "no_such_key": "1"})
	var e *mq.Error
	if !errors.As(err, &e) || !errors.Is(err, mq.ErrConfig) {
		t.Fatalf("unknown key: want an *Error with ErrConfig, got %v", err)
	}
	if e.Name != "MQ_ERR_CONFIG" || !strings.Contains(e.Message, "no_such_key") || e.Code != mq.ErrConfig {
		t.Errorf("unknown key: %+v", e)
	}
	if _, err := mq.NewPullConsumer(mq.Config{"namesrv_addr": namesrv}); !errors.Is(err, mq.ErrConfig) {
		t.Errorf("missing group: want ErrConfig, got %v", err)
	}
	if _, err := mq.NewProducer(mq.Config{"namesrv_addr": namesrv, "group": "a\x00b"}); !errors.Is(err, mq.ErrInvalidArg) {
		t.Errorf("NUL in a value: want ErrInvalidArg, got %v", err)
	}
	if _, err := mq.NewPushConsumer(mq.Config{"namesrv_addr": namesrv, "group": "g", "consume_threads": "x"}); !errors.Is(err, mq.ErrConfig) {
		t.Errorf("bad consume_threads: want ErrConfig, got %v", err)
	}
}
