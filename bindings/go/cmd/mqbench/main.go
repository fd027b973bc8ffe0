// Command mqbench measures synchronous sends through the Go binding (N
// goroutines, each sending one message at a time, as `mqctl bench produce
// --mode sync` does with N tasks) and, in the same run and against the same
// mqd, `mqctl bench produce`, alternating the two for a number of rounds.
//
//	mqbench -mqd ../../target/release/mqd -mqctl ../../target/release/mqctl
//
// Without -namesrv it starts its own `mqd standalone` (mqd's default store
// settings) in a temporary directory. Link it against the release libmq
// (bindings/go/Makefile's bench target does).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mq.dev/mq"
	"mq.dev/mq/internal/mqdtest"
)

func main() {
	namesrv := flag.String("namesrv", "", "NameServer of a running mqd (default: start one)")
	mqd := flag.String("mqd", "", "mqd to start (default: $MQD, else ../../target/debug/mqd)")
	mqctl := flag.String("mqctl", "", "mqctl to compare with (default: none)")
	threads := flag.Int("threads", 16, "goroutines sending at once")
	size := flag.Int("size", 1024, "body size in bytes")
	duration := flag.Duration("duration", 10*time.Second, "length of each measurement")
	rounds := flag.Int("rounds", 2, "measurements of each side, alternating")
	topic := flag.String("topic", "BenchmarkTest", "topic")
	warmup := flag.Duration("warmup", 2*time.Second, "sends before the first round")
	flag.Parse()
	if err := run(*namesrv, *mqd, *mqctl, *threads, *size, *duration, *warmup, *rounds, *topic); err != nil {
		fmt.Fprintln(os.Stderr, "mqbench:", err)
		os.Exit(1)
	}
}

func run(namesrv, mqd, mqctl string, threads, size int, duration, warmup time.Duration, rounds int, topic string) error {
	if namesrv == "" {
		d, err := mqdtest.Start(mqdtest.Options{Bin: mqd})
		if err != nil {
			return err
		}
		defer func() {
			d.Stop()
			d.Remove()
		}()
		namesrv = d.Namesrv
		fmt.Printf("mqd standalone: NameServer %s, data in %s\n", namesrv, d.Dir)
	}
	if mqctl != "" {
		if _, err := os.Stat(mqctl); err != nil {
			return fmt.Errorf("mqctl not found: %w", err)
		}
	}
	p, err := mq.NewProducer(mq.Config{"namesrv_addr": namesrv, "group": "mqbench_go_producer"})
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Printf("libmq %s; %d goroutines, %d-byte bodies, sync sends, %v per round\n", mq.Version(), threads, size, duration)
	// Warm-up: the topic's creation, connections, the allocator.
	if warmup > 0 {
		if _, err := measure(p, topic, threads, size, warmup); err != nil {
			return err
		}
	}
	var goTPS, ctlTPS []float64
	for r := 1; r <= rounds; r++ {
		if mqctl != "" {
			tps, line, err := runMqctl(mqctl, namesrv, topic, threads, size, duration)
			if err != nil {
				return err
			}
			ctlTPS = append(ctlTPS, tps)
			fmt.Printf("round %d mqctl: %s\n", r, line)
		}
		s, err := measure(p, topic, threads, size, duration)
		if err != nil {
			return err
		}
		goTPS = append(goTPS, s.tps)
		fmt.Printf("round %d go:    %s\n", r, s)
	}
	g := mean(goTPS)
	fmt.Printf("go binding: %.0f msg/s (mean of %d)\n", g, len(goTPS))
	if len(ctlTPS) > 0 {
		c := mean(ctlTPS)
		fmt.Printf("mqctl:      %.0f msg/s (mean of %d)\n", c, len(ctlTPS))
		fmt.Printf("go/mqctl:   %.1f %%\n", 100*g/c)
	}
	return nil
}

type stats struct {
	tps                float64
	size               int
	sent, errors       int64
	avg, p50, p99, max time.Duration
}

func (s stats) String() string {
	return fmt.Sprintf("tps=%.0f mb_per_s=%.2f avg_ms=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d",
		s.tps, s.tps*float64(s.size)/1e6, ms(s.avg), ms(s.p50), ms(s.p99), ms(s.max), s.errors)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// measure sends from threads goroutines for d; context.Background, so each
// Send is a single cgo call.
func measure(p *mq.Producer, topic string, threads, size int, d time.Duration) (stats, error) {
	body := bytes.Repeat([]byte{'x'}, size)
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, threads)
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	start := time.Now()
	for i := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := &mq.Message{Topic: topic, Body: body}
			l := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(stop) {
				t0 := time.Now()
				_, err := p.Send(context.Background(), msg)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				l = append(l, time.Since(t0))
				sent.Add(1)
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	el := time.Since(start)
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return stats{}, fmt.Errorf("no send succeeded: %v", firstErr.Load())
	}
	slices.Sort(all)
	var sum time.Duration
	for _, x := range all {
		sum += x
	}
	return stats{
		tps:    float64(sent.Load()) / el.Seconds(),
		size:   size,
		sent:   sent.Load(),
		errors: failed.Load(),
		avg:    sum / time.Duration(len(all)),
		p50:    all[len(all)/2],
		p99:    all[len(all)*99/100],
		max:    all[len(all)-1],
	}, nil
}

var tpsField = regexp.MustCompile(`bench produce tps=([0-9.]+)`)

// runMqctl runs `mqctl bench produce` with the same load and returns its
// throughput and summary line.
func runMqctl(mqctl, namesrv, topic string, threads, size int, d time.Duration) (float64, string, error) {
	cmd := exec.Command(mqctl, "--namesrv", namesrv, "bench", "produce", "--topic", topic,
		"--size", strconv.Itoa(size), "--threads", strconv.Itoa(threads), "--mode", "sync",
		"--duration", strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, "", fmt.Errorf("%s: %v\n%s", cmd, err, out)
	}
	m := tpsField.FindAllSubmatch(out, -1)
	if m == nil {
		return 0, "", fmt.Errorf("no summary in mqctl's output:\n%s", out)
	}
	last := m[len(m)-1]
	tps, _ := strconv.ParseFloat(string(last[1]), 64)
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return tps, string(lines[len(lines)-1]), nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
