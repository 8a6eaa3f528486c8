package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

// startNode runs a node on a free loopback port with its data in a temp
// dir (or dir, to restart on the same data) and stops it at the end.
func startNode(t *testing.T, dir string, mod func(*Config)) *Node {
	t.Helper()
	cfg := Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = dir
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.FlushInterval = 50 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	n, err := Start(context.Background(), cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	return n
}

func stopNode(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

type client struct {
	t           *testing.T
	base        string
	token       string
	contentType string // "" sends none, like many scripts
	header      http.Header
}

type response struct {
	status int
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := r.decodeErr(v); err != nil {
		t.Fatal(err)
	}
}

// decodeErr is decode for goroutines other than the test's.
func (r response) decodeErr(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("decode %s: %w", r.body, err)
	}
	return nil
}

// errCode returns the code of an error body, or "" if it is not one.
func (r response) errCode() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (c client) do(method, path string, body any) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil && c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{status: resp.StatusCode, body: data}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
