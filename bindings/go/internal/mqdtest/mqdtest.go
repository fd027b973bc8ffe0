// Package mqdtest runs a real `mqd standalone` for the Go binding's tests
// and benchmark, as the Rust end-to-end helpers do
// (tests/e2e/support/mqd.rs): free loopback ports, a temporary directory,
// ready once the broker has registered with the NameServer.
package mqdtest

import (
	"bufio"
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
	"sync"
	"syscall"
	"time"
)

// Daemon is a running mqd standalone.
type Daemon struct {
	// Namesrv is its NameServer's address.
	Namesrv string
	// Dir holds its data and its log (mqd.log).
	Dir string

	cmd    *exec.Cmd
	log    string
	exited chan error
}

// Path is the mqd to run: $MQD, else ../../target/debug/mqd relative to
// the working directory; an error names what is missing.
func Path() (string, error) {
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

// Ports come from below the kernel's ephemeral range, which only explicit
// binds use (an outgoing connection may take an ephemeral port between the
// probe and mqd's bind), and none is handed out twice in one process (a probe
// of port 0 gives the port back, so the next probe could get it again).
const lowestPort = 12000

var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if low, err := strconv.Atoi(f[0]); err == nil {
				return low
			}
		}
	}
	return 32768
}

// bindable tries the port as mqd will (Go's listeners set SO_REUSEADDR, as
// mqd's do).
func bindable(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func reservePorts(offsets ...int) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	high := max(ephemeralLow(), lowestPort+1000)
	span := high - lowestPort - 8
	start := (os.Getpid() * 7919) % span
next:
	for step := range span {
		port := lowestPort + 4 + (start+step)%span
		for _, o := range offsets {
			if handedOut[port+o] {
				continue next
			}
		}
		for _, o := range offsets {
			if !bindable(port + o) {
				continue next
			}
		}
		for _, o := range offsets {
			handedOut[port+o] = true
		}
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback ports between %d and %d", lowestPort, high)
}

func freePort() (int, error) { return reservePorts(0) }

// freeBrokerPort is a port P with P-2 (the VIP channel) and P+1 (HA) free.
func freeBrokerPort() (int, error) { return reservePorts(0, -2, 1) }

// Options change how Start runs mqd.
type Options struct {
	// Bin is the mqd binary ("" means Path()).
	Bin string
	// Small selects small store files, 1 s delay levels and fast
	// transaction check-backs, for tests; otherwise mqd's defaults but for
	// the data directory and the ports.
	Small bool
	// Args are more mqd arguments (`--key value` broker.conf keys).
	Args []string
}

// Start runs `mqd standalone` on free loopback ports in a new temporary
// directory and returns once its broker has registered with its
// NameServer (a route for TBW102 exists), so that clients find it at once.
func Start(o Options) (*Daemon, error) {
	bin := o.Bin
	if bin == "" {
		var err error
		if bin, err = Path(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "mq-go-")
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
	d := &Daemon{
		Dir:     dir,
		log:     filepath.Join(dir, "mqd.log"),
		Namesrv: fmt.Sprintf("127.0.0.1:%d", nsPort),
		exited:  make(chan error, 1),
	}
	args := []string{
		"standalone",
		"--data", filepath.Join(dir, "data"),
		"--namesrv-listen", d.Namesrv,
		"--listen-port", strconv.Itoa(port),
	}
	if o.Small {
		args = append(args,
			"--mappedFileSizeCommitLog", "16777216",
			"--maxIndexNum", "20000",
			"--maxHashSlotNum", "2000",
			"--messageDelayLevel", strings.TrimSpace(strings.Repeat("1s ", 18)),
			"--transactionCheckInterval", "300",
			"--transactionTimeOut", "500",
		)
	}
	args = append(args, o.Args...)
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
	for _, addr := range []string{d.Namesrv, fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port-2)} {
		if err := d.waitListening(addr, deadline); err != nil {
			d.Stop()
			d.PrintLog()
			return nil, err
		}
	}
	if err := d.waitRegistered(deadline); err != nil {
		d.Stop()
		d.PrintLog()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) waitListening(addr string, deadline time.Time) error {
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
func (d *Daemon) waitRegistered(deadline time.Time) error {
	var last error
	for time.Now().Before(deadline) {
		code, err := routeCode(d.Namesrv, "TBW102")
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

// Stop sends SIGTERM and waits (30 s at most, then SIGKILL); an error
// when mqd did not exit 0.
func (d *Daemon) Stop() error {
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

// PrintLog prints the end of mqd's log to stderr.
func (d *Daemon) PrintLog() {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	fmt.Fprintf(os.Stderr, "===== mqd log (%s, last %d lines) =====\n%s\n===== end of mqd log =====\n",
		d.log, len(lines), strings.Join(lines, "\n"))
}

// Remove deletes the daemon's directory (after Stop).
func (d *Daemon) Remove() error { return os.RemoveAll(d.Dir) }
