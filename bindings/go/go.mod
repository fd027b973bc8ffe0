module mq.dev/mq

go 1.26
