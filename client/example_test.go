package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node"
)

// exampleNode is the server the examples talk to: a real node, started on
// first use and stopped by TestMain.
var exampleNode struct {
	once sync.Once
	n    *node.Node
	dir  string
}

// serverURL starts the examples' node (single-user mode, a temporary data
// directory) and returns its URL.
func serverURL() string {
	exampleNode.once.Do(func() {
		dir, err := os.MkdirTemp("", "progressd-client-example-")
		if err != nil {
			log.Fatal(err)
		}
		cfg := node.Defaults()
		cfg.Addr = "127.0.0.1:0"
		cfg.DataDir = dir
		n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			log.Fatal(err)
		}
		exampleNode.n, exampleNode.dir = n, dir
	})
	return exampleNode.n.URL()
}

// stopExampleNode stops the examples' node if one was started.
func stopExampleNode() {
	if exampleNode.n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = exampleNode.n.Shutdown(ctx)
	_ = os.RemoveAll(exampleNode.dir)
}

// A worker creates a job with weighted stages and reports on it; each
// reply is the snapshot the report produced.
func ExampleClient_Report() {
	ctx := context.Background()
	c, err := client.New(serverURL(), "") // a token as the second argument when auth is on
	if err != nil {
		log.Fatal(err)
	}
	job, err := c.Create(ctx, client.CreateRequest{
		Project: "examples",
		Stages:  []client.StageSpec{{Name: "fetch"}, {Name: "encode", Weight: ptr(8.0)}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.State, job.Progress)

	s, err := c.Report(ctx, job.JobID, client.Report{Stage: ptr("encode"), Progress: ptr(0.5), Message: ptr("frame 600/1200")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s %.3f %s\n", s.State, s.Stage, s.Progress, s.Message)

	s, err = c.Report(ctx, job.JobID, client.Report{State: ptr(client.Succeeded)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.State, s.Progress)
	// Output:
	// queued 0
	// running encode 0.556 frame 600/1200
	// succeeded 1
}

// Watch follows a job live until it ends, calling fn with each newer
// snapshot, and returns the last.
func ExampleClient_Watch() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(serverURL(), "")
	if err != nil {
		log.Fatal(err)
	}
	job, err := c.Create(ctx, client.CreateRequest{Project: "examples"})
	if err != nil {
		log.Fatal(err)
	}
	go func() { // the worker, elsewhere
		for _, p := range []float64{0.25, 0.5, 0.75} {
			_, _ = c.Report(ctx, job.JobID, client.Report{Progress: ptr(p)})
		}
		_, _ = c.Report(ctx, job.JobID, client.Report{State: ptr(client.Failed), Error: ptr("disk full")})
	}()
	last, err := c.Watch(ctx, job.JobID, func(s client.Snapshot) {
		// Called with the current snapshot first, then every newer one.
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(last.State, last.Progress, *last.Error)
	// Output: failed 0.75 disk full
}

// List pages through the jobs the caller may see, newest first.
func ExampleClient_List() {
	ctx := context.Background()
	c, err := client.New(serverURL(), "")
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		if _, err := c.Create(ctx, client.CreateRequest{Project: "examples-list"}); err != nil {
			log.Fatal(err)
		}
	}
	opts := client.ListOptions{Project: "examples-list", Limit: 2}
	for {
		page, err := c.List(ctx, opts)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(page.Jobs), "jobs")
		if page.NextCursor == nil {
			break
		}
		opts.Cursor = *page.NextCursor
	}
	// Output:
	// 2 jobs
	// 1 jobs
}

// Errors the server answers with are *client.Error, with a stable code.
func ExampleIsNotFound() {
	c, err := client.New(serverURL(), "")
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Get(context.Background(), "no-such-job")
	fmt.Println(client.IsNotFound(err))
	// Output: true
}
