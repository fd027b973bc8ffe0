package mq_test

// The tests run against a real `mqd standalone` that TestMain starts
// (internal/mqdtest) with small store files, 1 s delay levels (a retried
// message comes back in about a second) and fast transaction check-backs.
// The daemon is $MQD, else ../../target/debug/mqd.

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"mq.dev/mq/internal/mqdtest"
)

// namesrv is the running daemon's NameServer address.
var namesrv string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	d, err := mqdtest.Start(mqdtest.Options{Small: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "mq tests: %v\n", err)
		return 1
	}
	namesrv = d.Namesrv
	code := m.Run()
	if err := d.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "mq tests: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		d.PrintLog()
		fmt.Fprintf(os.Stderr, "mq tests: the daemon's files are kept in %s\n", d.Dir)
	} else {
		d.Remove()
	}
	return code
}

// ctxFor is a test's context with a deadline.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
