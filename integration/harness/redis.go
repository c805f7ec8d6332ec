package harness

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Redis is a running redis-server on 127.0.0.1, without persistence.
type Redis struct {
	// Addr is 127.0.0.1:PORT.
	Addr string
	// URL is redis://Addr/0, as proxy.fleet.lease takes it.
	URL     string
	Dir     string
	Process *Process
}

// StartRedis starts Debian's redis-server on a free port of 127.0.0.1 with
// no persistence (no RDB snapshots, no AOF) and its working directory in a
// private temp dir, and waits until it answers PING.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	RequireCommands(t, "redis-server")
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
		r.URL = "redis://" + r.Addr + "/0"
		cmd := exec.Command("redis-server",
			"--bind", "127.0.0.1",
			"--port", fmt.Sprint(port),
			"--dir", dir,
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
			"--protected-mode", "yes",
			"--logfile", "",
		)
		r.Process = StartProcess(t, fmt.Sprintf("redis-%d", port), dir, cmd)
		if err := waitRedis(r.Process, r.Addr, 20*time.Second); err != nil {
			stdout, _ := r.Process.Output()
			r.Process.Stop()
			if attempt < 3 && strings.Contains(stdout, "Address already in use") {
				continue
			}
			r.Process.LogTail(t, 30)
			t.Fatalf("harness: redis-server did not start: %v", err)
		}
		return r
	}
}

// Stop ends redis-server (SIGTERM).
func (r *Redis) Stop() { r.Process.Stop() }

// Ping sends PING over a new connection and expects PONG.
func (r *Redis) Ping() error { return redisPing(r.Addr) }

func waitRedis(p *Process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("%s exited: %v", p.Name, p.Err())
		}
		if last = redisPing(addr); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING: got %q", strings.TrimSpace(line))
	}
	return nil
}
