package faults_test

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/e2e"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/tes1"
)

// rssMiB reads a process's resident set size.
func rssMiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestResourceExhaustion attacks a real `tes officer` process at once with
// 2,000 connections that never finish the handshake, slow writers (one byte
// a second), a SESSION flood (each costs an RSA decryption) and a 100 MB
// garbage stream. Through all of it a legitimate client's report completes,
// memory stays bounded, and the refusals show in the log and /healthz.
func TestResourceExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the resource exhaustion run")
	}
	data := filepath.Join(t.TempDir(), "data")
	o := e2e.StartOfficer(t, data, "--handshake-timeout", "3s", "--max-conns-per-ip", "5000", "--max-handshakes", "2")
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("police-password\n"), 0o600)
	if _, e, code := e2e.Run(t, "", nil, "user", "add", "police1", "--role", "police", "--data", data, "--password-file", pw); code != 0 {
		t.Fatal(e)
	}
	ck, _ := legacy.GenerateRSAKey(crand.Reader)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup

	// 1. 2,000 connections that never say anything.
	var idle []net.Conn
	for i := 0; i < 2000; i++ {
		c, err := net.Dial("tcp", o.TES1Addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()

	// 2. Slow writers: a SESSION message, one byte a second.
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", o.TES1Addr)
			if err != nil {
				return
			}
			defer c.Close()
			msg := []byte(`{"type": "SESSION", "payload": "` + strings.Repeat("a", 200) + `"}`)
			for _, b := range msg {
				if _, err := c.Write([]byte{b}); err != nil || ctx.Err() != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}

	// 3. A SESSION flood: well-formed sessions with random ciphertext,
	// each forcing an RSA-OAEP decryption.
	pem := legacy.MarshalPublicKeyPEM(&ck.PublicKey)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := net.Dial("tcp", o.TES1Addr)
				if err != nil {
					continue
				}
				r := bufio.NewReader(c)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r.ReadBytes('}') // HANDSHAKE
				for j := 0; j < 3 && ctx.Err() == nil; j++ {
					ek := make([]byte, 256)
					crand.Read(ek)
					inner, _ := json.Marshal(map[string]string{"encrypted_key": hex.EncodeToString(ek), "client_public_key": pem})
					c.Write(tes1.AppendMessage(nil, "SESSION", string(inner), ""))
					if _, err := r.ReadBytes('}'); err != nil {
						break
					}
				}
				c.Close()
			}
		}()
	}

	// 4. A 100 MB stream of garbage, on two connections: plain garbage and
	// an object that never ends.
	for _, prefix := range []string{"\x00garbage", `{"type": "DATA", "payload": "`} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", o.TES1Addr)
			if err != nil {
				return
			}
			defer c.Close()
			go io.Copy(io.Discard, c)
			c.Write([]byte(prefix))
			chunk := []byte(strings.Repeat("A", 1<<20))
			sent := 0
			for ; sent < 100 && ctx.Err() == nil; sent++ {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(chunk); err != nil {
					break // the server closed it, as it should
				}
			}
			if sent == 100 {
				t.Errorf("the server read 100 MB of garbage (%q...) without closing", prefix)
			}
		}()
	}

	// Meanwhile a legitimate client reports, several times.
	time.Sleep(time.Second)
	for i := 0; i < 5; i++ {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := tes1.Dial(rctx, o.TES1Addr, tes1.ClientConfig{Fingerprint: o.Fingerprint, ClientKey: ck, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("legitimate client under attack: %v", err)
		}
		if err := c.Login(rctx, "police1", "police-password"); err != nil {
			t.Fatalf("legitimate login under attack: %v", err)
		}
		if err := c.Send(rctx, &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("LEGIT%d", i), Speed: 99}); err != nil {
			t.Fatalf("legitimate report under attack: %v", err)
		}
		c.Close()
		cancel()
		time.Sleep(500 * time.Millisecond)
	}
	if rss := rssMiB(t, o.Cmd.Process.Pid); rss > 512 {
		t.Errorf("server RSS %d MiB under attack: more than 512 MiB", rss)
	} else {
		t.Logf("server RSS under attack: %d MiB", rss)
	}
	stop()
	wg.Wait()

	// The silent connections were closed at the handshake deadline.
	for i, c := range idle[:50] {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("idle connection %d still open after the handshake deadline: %v", i, err)
		}
	}

	// The refusals are visible to the operator.
	resp, err := http.Get("http://" + o.HTTPAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		RefusedTotal int64 `json:"refused_total"`
		ReportsTotal int64 `json:"reports_total"`
	}
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h.ReportsTotal != 5 || h.RefusedTotal < 10 {
		t.Errorf("/healthz: %d reports, %d refused; want 5 and many", h.ReportsTotal, h.RefusedTotal)
	}
	logs := o.Stderr()
	for _, want := range []string{"reason=\"Message Too Large\"", "reason=\"Malformed Message\"", "session refused", "deadline passed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("server log lacks %s", want)
		}
	}
}
