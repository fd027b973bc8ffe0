package mq_test

// The tests run against a real `mqd standalone` that TestMain starts on
// free loopback ports in a temporary directory, with small store files,
// 1 s delay levels (a retried message comes back in about a second) and
// fast transaction check-backs. The daemon is $MQD, else
// ../../target/debug/mqd.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// namesrv is the running daemon's NameServer address.
var namesrv string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	d, err := startMqd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mq tests: %v\n", err)
		return 1
	}
	namesrv = d.namesrv
	code := m.Run()
	if err := d.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "mq tests: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		d.printLog()
		fmt.Fprintf(os.Stderr, "mq tests: the daemon's files are kept in %s\n", d.dir)
	} else {
		os.RemoveAll(d.dir)
	}
	return code
}

type mqd struct {
	cmd     *exec.Cmd
	dir     string
	log     string
	namesrv string
	exited  chan error
}

func mqdPath() (string, error) {
	path := os.Getenv("MQD")
	what := "$MQD"
	if path == "" {
		path = filepath.Join("..", "..", "target", "debug", "mqd")
		what = "the default"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("mqd not found at %s (%s): build it with `cargo build -p mq-daemon` or set MQD to its path", abs, what)
	}
	return abs, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeBrokerPort is a port P with P-2 (the VIP channel) and P+1 (HA) free.
func freeBrokerPort() (int, error) {
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		ok := p > 1030 && p < 65535
		if ok {
			for _, q := range []int{p - 2, p + 1} {
				o, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", q))
				if err != nil {
					ok = false
					break
				}
				o.Close()
			}
		}
		l.Close()
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("no free loopback port P with P-2 and P+1 free")
}

func startMqd() (*mqd, error) {
	bin, err := mqdPath()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mq-go-test-")
	if err != nil {
		return nil, err
	}
	nsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	port, err := freeBrokerPort()
	if err != nil {
		return nil, err
	}
	d := &mqd{
		dir:     dir,
		log:     filepath.Join(dir, "mqd.log"),
		namesrv: fmt.Sprintf("127.0.0.1:%d", nsPort),
		exited:  make(chan error, 1),
	}
	levels := strings.TrimSpace(strings.Repeat("1s ", 18))
	args := []string{
		"standalone",
		"--data", filepath.Join(dir, "data"),
		"--namesrv-listen", d.namesrv,
		"--listen-port", strconv.Itoa(port),
		"--mappedFileSizeCommitLog", "16777216",
		"--maxIndexNum", "20000",
		"--maxHashSlotNum", "2000",
		"--messageDelayLevel", levels,
		"--transactionCheckInterval", "300",
		"--transactionTimeOut", "500",
	}
	logFile, err := os.Create(d.log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout = logFile
	d.cmd.Stderr = logFile
	level := os.Getenv("RUST_LOG")
	if level == "" {
		level = "info"
	}
	d.cmd.Env = append(os.Environ(), "RUST_LOG="+level)
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{d.namesrv, fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port-2)} {
		if err := d.waitListening(addr, deadline); err != nil {
			d.stop()
			d.printLog()
			return nil, err
		}
	}
	if err := d.waitRegistered(deadline); err != nil {
		d.stop()
		d.printLog()
		return nil, err
	}
	return d, nil
}

func (d *mqd) waitListening(addr string, deadline time.Time) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("mqd exited (%v) before listening on %s", err, addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mqd is not listening on %s after 30 s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRegistered waits until the NameServer has a route for TBW102: the
// broker has registered, so clients find it at once.
func (d *mqd) waitRegistered(deadline time.Time) error {
	var last error
	for time.Now().Before(deadline) {
		code, err := routeCode(d.namesrv, "TBW102")
		if err == nil && code == 0 {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("GET_ROUTEINFO_BY_TOPIC answered code %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the broker did not register with the NameServer within 30 s: %v", last)
}

// routeCode asks the NameServer for topic's route (RocketMQ remoting,
// JSON header) and returns the response code (0 is SUCCESS).
func routeCode(addr, topic string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	const getRouteInfoByTopic = 105
	header, _ := json.Marshal(map[string]any{
		"code": getRouteInfoByTopic, "language": "GO", "version": 0, "opaque": 1, "flag": 0,
		"extFields": map[string]string{"topic": topic},
	})
	frame := make([]byte, 8, 8+len(header))
	binary.BigEndian.PutUint32(frame[0:], uint32(4+len(header)))
	binary.BigEndian.PutUint32(frame[4:], uint32(len(header))) // serialize type 0: JSON
	if _, err := c.Write(append(frame, header...)); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	var word [4]byte
	if _, err := io.ReadFull(r, word[:]); err != nil {
		return 0, err
	}
	body := make([]byte, binary.BigEndian.Uint32(word[:]))
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	if len(body) < 4 {
		return 0, errors.New("short response")
	}
	hlen := binary.BigEndian.Uint32(body[:4]) & 0xffffff
	if int(hlen) > len(body)-4 {
		return 0, errors.New("bad header length")
	}
	var h struct {
		Code int `json:"code"`
	}
	if err := json.Unmarshal(body[4:4+hlen], &h); err != nil {
		return 0, err
	}
	return h.Code, nil
}

func (d *mqd) stop() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		if err != nil {
			return fmt.Errorf("mqd exited with %v on SIGTERM", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		return errors.New("mqd did not exit within 30 s of SIGTERM")
	}
}

func (d *mqd) printLog() {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	fmt.Fprintf(os.Stderr, "===== mqd log (%s, last %d lines) =====\n%s\n===== end of mqd log =====\n",
		d.log, len(lines), strings.Join(lines, "\n"))
}

// ctxFor is a test's context with a deadline.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
