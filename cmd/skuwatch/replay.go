package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/skuwatch/skuwatch/engine"
	"github.com/skuwatch/skuwatch/sinks"
)

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rulesPath := fs.String("rules", "", "rule file (required)")
	events := fs.String("events", "", "canonical events, one JSON object per line (required)")
	out := fs.String("out", "", "exceptions output, JSONL (required)")
	dlq := fs.String("dlq", "", "dead-letter output, JSONL (required)")
	data := fs.String("data", "", "state directory; an existing one resumes its replay (default: a new temporary directory, removed afterwards)")
	batch := fs.Int("batch", 2000, "input lines per committed batch")
	cache := fs.Int("cache-entries", 500_000, "ledger rows kept in memory (the working set); the rest is read from the state store")
	pg := addPostgresFlags(fs)
	if err := fs.Parse(args); err != nil {
		return userError{err}
	}
	for name, v := range map[string]string{"--rules": *rulesPath, "--events": *events, "--out": *out, "--dlq": *dlq} {
		if v == "" {
			return userErr("%s is required", name)
		}
	}
	if fs.NArg() > 0 {
		return userErr("unexpected arguments %q", fs.Args())
	}
	rs, err := engine.LoadRules(*rulesPath)
	if err != nil {
		return userError{err}
	}
	if _, err := os.Stat(*events); err != nil {
		return userError{err}
	}
	dir := *data
	if dir == "" {
		if dir, err = os.MkdirTemp("", "skuwatch-replay-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	live := engine.NewRules(rs, nil)
	db, err := pg.open(ctx, live.Current)
	if err != nil {
		return err
	}
	var extra []sinks.Sink
	if db != nil {
		defer db.Close()
		extra = db.Sinks("postgres")
	}
	sum, err := engine.Replay(ctx, engine.ReplayConfig{
		Rules: live, EventsPath: *events, OutPath: *out, DLQPath: *dlq,
		DataDir: dir, BatchLines: *batch, CacheEntries: *cache, ExtraSinks: extra,
	})
	if errors.Is(err, engine.ErrOtherInput) {
		return userError{err}
	}
	if err != nil {
		return err
	}
	line, _ := json.Marshal(sum)
	fmt.Fprintln(stdout, string(line))
	return nil
}
