package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/grafana/pyroscope-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/skuwatch/skuwatch/engine"
	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/sinks/postgres"
	"github.com/skuwatch/skuwatch/state"
)

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "skuwatch.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return userError{err}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return userError{err}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runService(ctx, cfg, nil)
}

// runService runs the configured stages, the rule reloader and the HTTP
// endpoints until ctx ends (SIGTERM: each partition finishes its batch,
// syncs and commits). listening, if set, gets the HTTP address once bound.
func runService(ctx context.Context, cfg *config, listening func(addr string)) error {
	log := slog.Default()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := engine.NewMetrics(reg)
	dialer, transport, err := cfg.kafkaClients()
	if err != nil {
		return userError{err}
	}
	defer transport.CloseIdleConnections()

	if u := cfg.Profiling.PyroscopeURL; u != "" {
		name := cfg.Profiling.AppName
		if name == "" {
			name = "skuwatch"
		}
		prof, err := pyroscope.Start(pyroscope.Config{ApplicationName: name, ServerAddress: u})
		if err != nil {
			return fmt.Errorf("profiling: %w", err)
		}
		defer prof.Stop()
	}

	g, ctx := errgroup.WithContext(ctx)
	var ready func() bool = func() bool { return true }
	var started atomic.Bool

	validation := engine.IntakeConfig{Sources: cfg.Intake.Sources, MaxFutureSkew: cfg.futureSkew}
	if cfg.runs("intake") {
		in, err := engine.NewIntakeStage(engine.IntakeStageConfig{Brokers: cfg.Kafka.Brokers, RawTopics: cfg.Topics.Raw,
			GroupID: cfg.Groups.Intake, LedgerTopic: cfg.Topics.Ledger, DLQTopic: cfg.Topics.DLQ,
			Intake: validation,
			Dialer: dialer, Transport: transport, Logger: log})
		if err != nil {
			return userError{err}
		}
		g.Go(func() error { return in.Run(ctx) })
	}
	if cfg.runs("processor") {
		rs, err := engine.LoadRules(cfg.Rules)
		if err != nil {
			return userError{err}
		}
		live := engine.NewRules(rs, metrics)
		reloader := &engine.Reloader{Path: cfg.Rules, Rules: live, Logger: log}
		g.Go(func() error { return reloader.Run(ctx) })
		if cfg.Sinks.JSONLDir != "" {
			if err := os.MkdirAll(cfg.Sinks.JSONLDir, 0o755); err != nil {
				return userError{err}
			}
		}
		var pg *postgres.DB
		if pc := cfg.Sinks.Postgres; pc.DSN != "" {
			// Migrated before the first write, so the service starts even
			// while PostgreSQL is down.
			if pg, err = postgres.New(pc.DSN, postgres.Options{Schema: pc.Schema, Rules: live.Current}); err != nil {
				return userError{err}
			}
			defer pg.Close()
		}
		proc, err := engine.NewProcessorStage(engine.ProcessorStageConfig{Brokers: cfg.Kafka.Brokers,
			LedgerTopic: cfg.Topics.Ledger, GroupID: cfg.Groups.Processor, DataDir: cfg.DataDir, Rules: live,
			ChangelogTopic: cfg.Topics.Changelog, Transport: transport, Intake: validation,
			Clock: engine.ClockWall, BatchSize: cfg.Processor.BatchSize, BatchWindow: cfg.batchWindow, CommitInterval: cfg.commitInterval, DedupRetention: cfg.dedupRetention, SnapshotBytes: cfg.Processor.SnapshotBytes, CacheEntries: cfg.Processor.CacheEntries,
			MaxBacklog: cfg.Processor.MaxBacklog, Dialer: dialer, Metrics: metrics, Logger: log,
			Sinks: func(p int) ([]sinks.Sink, error) {
				var out []sinks.Sink
				if d := cfg.Sinks.JSONLDir; d != "" {
					out = append(out,
						sinks.NewJSONL("jsonl-exceptions", filepath.Join(d, fmt.Sprintf("exceptions-%d.jsonl", p)), state.StreamExceptions, true),
						sinks.NewJSONL("jsonl-deadletter", filepath.Join(d, fmt.Sprintf("deadletter-%d.jsonl", p)), state.StreamDeadLetter, true))
				}
				if cfg.Sinks.KafkaExceptions {
					k, err := sinks.NewKafka("kafka-exceptions", cfg.Kafka.Brokers, cfg.Topics.Exceptions, sinks.WithTransport(transport))
					if err != nil {
						return nil, err
					}
					out = append(out, k)
				}
				if pg != nil {
					out = append(out, pg.Sinks("postgres")...)
				}
				return out, nil
			}})
		if err != nil {
			return userError{err}
		}
		ready = proc.Ready
		g.Go(func() error { return proc.Run(ctx) })
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if started.Load() && ready() && ctx.Err() == nil {
			fmt.Fprintln(w, "ready")
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return userError{fmt.Errorf("http.addr: %w", err)}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	})
	started.Store(true)
	log.Info("skuwatch running", "http", ln.Addr().String(), "intake", cfg.runs("intake"), "processor", cfg.runs("processor"))
	if listening != nil {
		listening(ln.Addr().String())
	}
	err = g.Wait()
	log.Info("skuwatch stopped")
	return err
}
