package mq_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mq.dev/mq"
	"mq.dev/mq/internal/mqdtest"
)

// access_key and secret_key sign every request: against a broker with
// aclEnable=true (a daemon of this test's own) a signed producer and pull
// consumer move a message, an unsigned send is refused with 4.9.7's reason,
// and half a pair of keys is a config error.
func TestAclSigning(t *testing.T) {
	topic := unique(t, "t")
	accounts := filepath.Join(t.TempDir(), "plain_acl.yml")
	yml := "accounts:\n" +
		"  - accessKey: goclient\n" +
		"    secretKey: gosecret1\n" +
		"    defaultTopicPerm: DENY\n" +
		"    defaultGroupPerm: SUB\n" +
		"    topicPerms:\n" +
		"      - \"" + topic + "=PUB|SUB\"\n"
	if err := os.WriteFile(accounts, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := mqdtest.Start(mqdtest.Options{Small: true, Args: []string{"--aclEnable", "true", "--plainAclFile", accounts}})
	if err != nil {
		t.Fatalf("start mqd with ACL: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			d.PrintLog()
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stop mqd: %v", err)
		}
		_ = d.Remove() // best effort: a temporary directory
	})
	cfg := func(group string, extra ...string) mq.Config {
		c := mq.Config{"namesrv_addr": d.Namesrv, "group": group, "access_key": "goclient", "secret_key": "gosecret1"}
		for i := 0; i+1 < len(extra); i += 2 {
			c[extra[i]] = extra[i+1]
		}
		return c
	}

	p, err := mq.NewProducer(cfg(unique(t, "p")))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	defer p.Close()
	sent := send(t, p, &mq.Message{Topic: topic, Body: []byte("signed")})

	c, err := mq.NewPullConsumer(cfg(unique(t, "g"), "consume_from", "first"))
	if err != nil {
		t.Fatalf("NewPullConsumer: %v", err)
	}
	defer c.Close()
	if err := c.Subscribe(ctxFor(t, 10*time.Second), topic, "*"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	got := pollUntil(t, c, 30*time.Second, "the signed message", func(m []*mq.Message) bool { return len(m) >= 1 })
	if len(got) != 1 || got[0].MsgID != sent.MsgID || string(got[0].Body) != "signed" {
		t.Fatalf("received %v, sent %v", got, sent)
	}

	unsigned := mq.Config{"namesrv_addr": d.Namesrv, "group": unique(t, "u")}
	u, err := mq.NewProducer(unsigned)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	defer u.Close()
	_, err = u.Send(ctxFor(t, 10*time.Second), &mq.Message{Topic: topic, Body: []byte("unsigned")})
	var e *mq.Error
	if !errors.As(err, &e) || !errors.Is(err, mq.ErrBroker) || e.BrokerCode != 1 ||
		!strings.Contains(e.Message, "No accessKey is configured") {
		t.Fatalf("unsigned send: want MQ_ERR_BROKER code 1 with the ACL reason, got %v", err)
	}

	half := mq.Config{"namesrv_addr": d.Namesrv, "group": unique(t, "h"), "access_key": "goclient"}
	if _, err := mq.NewProducer(half); !errors.Is(err, mq.ErrConfig) {
		t.Fatalf("half a pair of keys: want ErrConfig, got %v", err)
	}
}
