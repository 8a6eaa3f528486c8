package loadtest

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/node"
)

// helperEnv makes the test binary act as `progressd serve` (see
// helperServe), so StartServer can be tested on a real child process
// without building the progressd binary. It does not start with
// PROGRESSD_, which StartServer strips.
const helperEnv = "LOADTEST_HELPER_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperServe(os.Args[1:]))
	}
	if spec := os.Getenv(floorEnv); spec != "" {
		os.Exit(RunFloorPeer(spec))
	}
	goleak.VerifyTestMain(m)
}

// helperServe runs the real server (node.Start) with the flags StartServer
// passes, until SIGTERM, like `progressd serve`.
func helperServe(args []string) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "helper: want serve as the first argument, got", args)
		return 2
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PROGRESSD_") {
			fmt.Fprintln(os.Stderr, "helper: StartServer leaked", kv)
			return 3
		}
	}
	cfg := node.Defaults()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "")
	fs.IntVar(&cfg.MaxConnsPerUser, "max-conns-per-user", cfg.MaxConnsPerUser, "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "helper: shutdown:", err)
		return 1
	}
	return 0
}
