package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/progressd/progressd/internal/node"
)

func newServe() *cobra.Command {
	cfg := node.Defaults()
	var secretFile, webhookSecretFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server: API, WebSocket/SSE gateway and dashboard",
		Long: `Run progressd in one process. With no flags it listens on 127.0.0.1:8000,
keeps jobs in a SQLite file under ./progressd-data and snapshots in memory.
Every flag can also be set as PROGRESSD_<FLAG>, e.g. PROGRESSD_DATA_DIR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			if err := readSecretFile(&cfg.AuthSecret, "auth-secret", secretFile); err != nil {
				return err
			}
			if err := readSecretFile(&cfg.WebhookSecret, "webhook-secret", webhookSecretFile); err != nil {
				return err
			}
			return serve(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (SQLite file)")
	f.StringVar(&cfg.DB, "db", cfg.DB, "database: empty for SQLite in the data dir, a SQLite file path, or postgres://user:password@host:5432/database")
	f.StringVar(&cfg.Redis, "redis", cfg.Redis, "Redis URL for snapshots and cross-node fan-out (empty: in memory)")
	f.StringVar(&cfg.Snapshots, "snapshots", cfg.Snapshots, "where the latest snapshots live: memory or redis (default: redis when --redis is set)")
	f.StringVar(&cfg.Broker, "broker", cfg.Broker, "how updates reach the other nodes: local or redis (default: redis when --redis is set)")
	f.StringVar(&cfg.RedisPrefix, "redis-prefix", cfg.RedisPrefix, "prefix of every Redis key and of the pub/sub channel; nodes that work together use the same")
	f.StringVar(&cfg.AuthSecret, "auth-secret", cfg.AuthSecret, "HS256 secret for tokens, at least 16 bytes; empty is single-user mode (loopback only). "+
		"On the command line it is visible in the process list: prefer PROGRESSD_AUTH_SECRET or --auth-secret-file")
	f.StringVar(&secretFile, "auth-secret-file", "", "read --auth-secret from this file (surrounding whitespace dropped)")
	f.StringSliceVar(&cfg.AllowedOrigins, "allowed-origins", cfg.AllowedOrigins, "browser origins allowed besides the server's own, comma-separated: they may open WebSockets, call the API with CORS and write")
	f.StringSliceVar(&cfg.WebhookURLs, "webhook-url", cfg.WebhookURLs, "POST a signed event to this http(s) URL when a job ends or stalls (repeatable, or comma-separated); needs --webhook-secret")
	f.StringVar(&cfg.WebhookSecret, "webhook-secret", cfg.WebhookSecret, "HMAC-SHA256 key of the events' Progressd-Signature header, at least 16 bytes. "+
		"On the command line it is visible in the process list: prefer PROGRESSD_WEBHOOK_SECRET or --webhook-secret-file")
	f.StringVar(&webhookSecretFile, "webhook-secret-file", "", "read --webhook-secret from this file (surrounding whitespace dropped)")
	f.StringVar(&cfg.Pipelines, "pipelines", cfg.Pipelines, "pipelines YAML file (default: the built-in demo pipeline)")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.DurationVar(&cfg.FlushInterval, "flush-interval", cfg.FlushInterval, "how often intermediate progress and log lines are written to the database")
	f.DurationVar(&cfg.Retention, "retention", cfg.Retention, "delete finished jobs (with their log lines) this long after they finished, swept every minute in small batches; 0 keeps everything")
	f.DurationVar(&cfg.AbandonAfter, "abandon-after", cfg.AbandonAfter, "fail a job that is not finished and has had no report for this long (counted from its creation; pipeline jobs excepted: their stages' timeouts rule), with the error \"no report for …\"; a job's abandon_after_seconds replaces it; 0 turns it off")
	f.IntVar(&cfg.LogLines, "log-lines", cfg.LogLines, "log lines kept per job (the newest; each at most 4 KiB)")
	f.IntVar(&cfg.MaxFrameBytes, "max-frame-bytes", cfg.MaxFrameBytes, "largest WebSocket frame accepted")
	f.IntVar(&cfg.MaxSubscriptions, "max-subscriptions", cfg.MaxSubscriptions, "subscriptions per connection")
	f.IntVar(&cfg.MaxConnsPerUser, "max-conns-per-user", cfg.MaxConnsPerUser, "connections per user (not applied to admins or single-user mode)")
	f.DurationVar(&cfg.MinWriteInterval, "min-write-interval", cfg.MinWriteInterval, "space the writes to each client at least this far apart, coalescing each job's updates in between to the newest (state changes and the first update after a quiet period go at once); 0 writes every update at once")
	f.IntVar(&cfg.Workers, "workers", cfg.Workers, "pipeline jobs run at once on this node")
	f.DurationVar(&cfg.KillGrace, "kill-grace", cfg.KillGrace, "time a canceled or stopped stage command has between SIGTERM and SIGKILL")
	f.DurationVar(&cfg.NodeTimeout, "node-timeout", cfg.NodeTimeout, "with a postgres:// --db: a node silent this long is taken for dead and its running jobs are retried or failed elsewhere")
	return cmd
}

func serve(ctx context.Context, cfg node.Config) error {
	level, err := node.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	// PROGRESSD_CPUPROFILE=FILE writes a CPU profile of the whole run, for
	// finding where server time goes under `progressd bench`.
	stopProfile, err := startCPUProfile("PROGRESSD_CPUPROFILE")
	if err != nil {
		return err
	}
	defer stopProfile()
	// PROGRESSD_MEMPROFILE=FILE writes what the run allocated, at its end.
	stopMemProfile, err := startMemProfile("PROGRESSD_MEMPROFILE")
	if err != nil {
		return err
	}
	defer stopMemProfile()
	defer startGCFloor()()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "progressd: dashboard on %s/  API docs on %s/docs\n", n.URL(), n.URL())
	select {
	case <-ctx.Done():
	case err := <-n.Done():
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("server stopped", "err", err)
		}
	}
	stop() // a second signal kills at once
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}
