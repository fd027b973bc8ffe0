package mq_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"mq.dev/mq"
)

func Example() {
	ctx := context.Background()
	p, err := mq.NewProducer(mq.Config{"namesrv_addr": "127.0.0.1:9876", "group": "my_producers"})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	r, err := p.Send(ctx, &mq.Message{Topic: "Demo", Tags: "TagA", Keys: []string{"order-1"}, Body: []byte("hello")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent", r.MsgID)

	// Push: a handler on the consumer's goroutines; ConsumeLater (or a
	// panic) redelivers the batch.
	c, err := mq.NewPushConsumer(mq.Config{"namesrv_addr": "127.0.0.1:9876", "group": "my_consumers", "consume_from": "first"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Subscribe("Demo", "TagA || TagB")
	c.Start(func(ctx context.Context, msgs []*mq.Message) mq.ConsumeResult {
		for _, m := range msgs {
			fmt.Printf("%s %q (delivery %d)\n", m.MsgID, m.Body, m.ReconsumeTimes+1)
		}
		return mq.ConsumeSuccess
	})

	// Pull: Poll waits until messages come or the context ends.
	pc, err := mq.NewPullConsumer(mq.Config{"namesrv_addr": "127.0.0.1:9876", "group": "my_pullers"})
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	pc.Subscribe(ctx, "Demo", "*")
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	msgs, err := pc.Poll(pctx)
	fmt.Println(len(msgs), err)
}
