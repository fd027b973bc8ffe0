package mq

import "testing"

// Send goes through reports only when sync and async retries agree,
// whichever of libmq's names sets them.
func TestRetriesAgree(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want bool
	}{
		{Config{}, true},
		{Config{"retry_times_when_send_failed": "1", "retry_times_when_send_async_failed": "1"}, true},
		{Config{"retryTimesWhenSendFailed": "1", "retry_times_when_send_async_failed": "1"}, true},
		{Config{"retryTimesWhenSendFailed": "1"}, false},
		{Config{"retry_times_when_send_failed": "3"}, false},
		{Config{"retryTimesWhenSendAsyncFailed": "0"}, false},
		{Config{"retry_times_when_send_failed": "1", "retryTimesWhenSendFailed": "2",
			"retry_times_when_send_async_failed": "1"}, false},
	} {
		if got := retriesAgree(c.cfg); got != c.want {
			t.Errorf("retriesAgree(%v) = %v, want %v", c.cfg, got, c.want)
		}
	}
}
