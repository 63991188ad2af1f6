package vmtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/websocket"
)

// Chromium is a headless Chromium in a network namespace, driven through
// the DevTools protocol: one page, scripts evaluated in it.
type Chromium struct {
	cmd  *exec.Cmd
	dir  string
	ws   *websocket.Conn
	mu   sync.Mutex
	next int
}

const devtoolsAddr = "127.0.0.1:9222"

// StartChromium opens url in a headless Chromium inside namespace ns.
// The flags keep it off the network but for url (this machine has none).
func StartChromium(ns, url string) (*Chromium, error) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fornax-chromium")
	if err != nil {
		return nil, err
	}
	c := &Chromium{dir: dir}
	c.cmd = exec.Command("ip", "netns", "exec", ns, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=900,600",
		"--remote-debugging-port=9222", "--remote-allow-origins=*", url)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var pages []struct{ URL, Type, WebSocketDebuggerURL string }
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		b, err := HTTPGet(ns, devtoolsAddr, "/json/list")
		if err == nil && json.Unmarshal(b, &pages) == nil {
			for _, p := range pages {
				if p.Type == "page" && strings.HasPrefix(p.URL, url) {
					err = InNetns(ns, func() (err error) {
						c.ws, err = websocket.Dial(p.WebSocketDebuggerURL, "", "http://127.0.0.1/")
						return err
					})
					if err != nil {
						c.Close()
						return nil, err
					}
					return c, nil
				}
			}
		}
		if time.Now().After(deadline) {
			c.Close()
			return nil, fmt.Errorf("chromium: no page for %s after 30 s (%v, %+v)", url, err, pages)
		}
	}
}

// call sends one DevTools command and returns its result.
func (c *Chromium) call(method string, params any, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	id := c.next
	if err := websocket.JSON.Send(c.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return err
	}
	c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var m struct {
			ID     int
			Result json.RawMessage
			Error  *struct{ Message string }
		}
		if err := websocket.JSON.Receive(c.ws, &m); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		if m.ID != id { // an event, or an answer to another
			continue
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		return json.Unmarshal(m.Result, result)
	}
}

// Eval evaluates a JavaScript expression in the page and unmarshals its
// value, which must be JSON, into v.
func (c *Chromium) Eval(expr string, v any) error {
	var r struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails *struct{ Text string }
	}
	if err := c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s", expr, r.ExceptionDetails.Text)
	}
	return json.Unmarshal(r.Result.Value, v)
}

// Screenshot returns the page as a PNG.
func (c *Chromium) Screenshot() ([]byte, error) {
	var r struct{ Data string }
	if err := c.call("Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// Close ends Chromium and removes its profile.
func (c *Chromium) Close() {
	if c.ws != nil {
		c.ws.Close()
	}
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL) // its renderers and helpers too
	c.cmd.Wait()
	os.RemoveAll(c.dir)
}
