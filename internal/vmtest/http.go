package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HTTPGet fetches path from hostport inside network namespace ns and
// returns the body of a 200 answer; any other status is an error. The
// socket is made on the namespace's thread (an http.Transport would dial
// from another goroutine, in this process's own namespace).
func HTTPGet(ns, hostport, path string) ([]byte, error) {
	var c net.Conn
	err := InNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", hostport, 5*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, hostport); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s from %s: body: %w", path, hostport, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s from %s: %s", path, hostport, resp.Status)
	}
	return body, nil
}
