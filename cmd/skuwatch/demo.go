package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/skuwatch/skuwatch/engine"
	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sinks/postgres"
	"github.com/skuwatch/skuwatch/sources/synth"
	"github.com/skuwatch/skuwatch/state"
)

func synthFlags(fs *flag.FlagSet) *synth.Config {
	c := &synth.Config{}
	fs.IntVar(&c.Stores, "stores", 20, "stores in the chain")
	fs.IntVar(&c.SKUs, "skus", 100, "SKUs ranged in every store")
	fs.IntVar(&c.Days, "days", 70, "days of trading")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed (same seed, same stream)")
	return c
}

func cmdGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := synthFlags(fs)
	events := fs.String("events", "events.jsonl", "events output")
	labels := fs.String("labels", "labels.jsonl", "labels output: the injected anomalies")
	if err := fs.Parse(args); err != nil {
		return userError{err}
	}
	st, err := generate(*cfg, *events, *labels)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d lines (%d events, %d malformed, %d redelivered, %d late) to %s\n",
		st.Lines, st.Events, st.Malformed, st.Duplicates, st.Late, *events)
	return nil
}

func generate(cfg synth.Config, eventsPath, labelsPath string) (synth.Stats, error) {
	f, err := os.Create(eventsPath)
	if err != nil {
		return synth.Stats{}, userError{err}
	}
	defer f.Close()
	labels, st, err := synth.Generate(cfg, f)
	if err != nil {
		return st, err
	}
	if err := f.Close(); err != nil {
		return st, err
	}
	lf, err := os.Create(labelsPath)
	if err != nil {
		return st, userError{err}
	}
	defer lf.Close()
	enc := json.NewEncoder(lf)
	for _, l := range labels {
		if err := enc.Encode(l); err != nil {
			return st, err
		}
	}
	return st, lf.Close()
}

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := synthFlags(fs)
	dir := fs.String("dir", "", "where to leave the files (default: a temporary directory, removed afterwards)")
	rulesPath := fs.String("rules", "", "rule file (default: the built-in rules/default.yaml)")
	rate := fs.Int("rate", 50_000, "events per second produced to the raw topic (0: as fast as the broker takes them)")
	duration := fs.Duration("duration", 10*time.Minute, "stop after this long even if the stream is not done")
	pg := addPostgresFlags(fs)
	if err := fs.Parse(args); err != nil {
		return userError{err}
	}
	if *rate < 0 {
		return userErr("--rate must not be negative")
	}
	var rs *rules.Ruleset
	var err error
	if *rulesPath != "" {
		rs, err = engine.LoadRules(*rulesPath)
	} else {
		rs, err = engine.LoadRulesBytes("rules/default.yaml", rules.Default)
	}
	if err != nil {
		return userError{err}
	}
	out := *dir
	if out == "" {
		if out, err = os.MkdirTemp("", "skuwatch-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(out)
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return userError{err}
	}
	p := func(name string) string { return filepath.Join(out, name) }
	for _, old := range []string{"state", "exceptions-*.jsonl"} { // a demo always starts afresh
		matches, _ := filepath.Glob(p(old))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(stdout, "skuwatch demo: %d stores × %d SKUs × %d days, ruleset %s, in-process Kafka\n", cfg.Stores, cfg.SKUs, cfg.Days, rs.Version)
	t0 := time.Now()
	st, err := generate(*cfg, p("events.jsonl"), p("labels.jsonl"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "generated %d lines (%d malformed, %d redelivered, %d delivered late) in %s; producing at %s\n",
		st.Lines, st.Malformed, st.Duplicates, st.Late, time.Since(t0).Round(time.Millisecond), rateText(*rate))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	db, err := pg.open(ctx, func() *rules.Ruleset { return rs })
	if err != nil {
		return err
	}
	if db != nil {
		defer db.Close()
	}
	demo := &streamDemo{rs: rs, events: p("events.jsonl"), dir: out, rate: *rate, maxRun: *duration, out: stdout, pg: db}
	t1 := time.Now()
	pc, ic, err := demo.run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	el := time.Since(t1)
	fmt.Fprintf(stdout, "\nstreamed %d events in %s: intake read %d, %d to the ledger (transfers tell their destination too), %d dead-lettered with their reasons\n",
		demo.produced.Load(), el.Round(time.Millisecond), ic.Read, ic.Ledger, ic.DeadLettered)
	fmt.Fprintf(stdout, "processor: %d ledger records, %d redelivered ids ignored, %d late; exceptions %d opened, %d updated, %d resolved; %d timer evaluations\n\n",
		pc.Processed, pc.Duplicates, pc.Late, pc.Opened, pc.Updated, pc.Resolved, pc.TimersFired)
	labels, err := readLabels(p("labels.jsonl"))
	if err != nil {
		return err
	}
	var dets []synth.Detection
	for _, path := range demo.outPaths {
		d, err := readDetections(path)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		dets = append(dets, d...)
	}
	printScores(stdout, synth.Score(labels, dets))
	if db != nil {
		until, err := postgres.LatestDay(ctx, db.Pool())
		if err != nil {
			return err
		}
		snap, err := postgres.TakeSnapshot(ctx, db.Pool(), until.AddDate(0, 0, -cfg.Days-1), until)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nPostgreSQL schema %s (skuwatch kpi --postgres ... --postgres-schema %s):\n", db.Schema(), db.Schema())
		printSnapshot(stdout, snap)
	}
	if *dir != "" {
		fmt.Fprintf(stdout, "\nfiles in %s: events.jsonl labels.jsonl exceptions-<partition>.jsonl state/\n", out)
	}
	return nil
}

func rateText(rate int) string {
	if rate == 0 {
		return "full speed"
	}
	return fmt.Sprintf("%d events/s", rate)
}

func printScores(w io.Writer, scores []synth.RuleScore) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rule\tlabelled\tdetected\tcorrect\tprecision\trecall\t")
	for _, s := range scores {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%.3f\t\n", s.Rule, s.Labels, s.Detections, s.TruePositives, s.Precision, s.Recall)
	}
	tw.Flush()
}

func readLabels(path string) ([]synth.Label, error) {
	var out []synth.Label
	return out, eachJSONLine(path, func(b []byte) error {
		var l synth.Label
		err := json.Unmarshal(b, &l)
		out = append(out, l)
		return err
	})
}

// readDetections returns the opened exceptions of an exceptions JSONL file.
func readDetections(path string) ([]synth.Detection, error) {
	var out []synth.Detection
	return out, eachJSONLine(path, func(b []byte) error {
		var x state.Exception
		if err := json.Unmarshal(b, &x); err != nil {
			return err
		}
		if x.Change == engine.ChangeOpened {
			out = append(out, synth.Detection{Rule: x.Rule, SKU: x.SKU, Location: x.Location, DetectedAt: x.DetectedAt})
		}
		return nil
	})
}

func eachJSONLine(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return sc.Err()
}
