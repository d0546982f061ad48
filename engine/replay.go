package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/state"
)

// ReplayConfig configures Replay.
type ReplayConfig struct {
	Rules      *Rules // required
	EventsPath string // required: a .jsonl file of canonical events
	OutPath    string // exceptions JSONL; required
	DLQPath    string // dead letters JSONL; required
	DataDir    string // required: the store; an existing one resumes
	// BatchLines is how many input lines make one batch. The default is 2000.
	BatchLines int
	// CacheEntries bounds in-memory ledger rows (see ProcessorConfig).
	CacheEntries int
	// Sync makes each commit durable before the next batch. The default is
	// false: a replay can be rerun, and the final commit is always synced.
	Sync bool
	// ExtraSinks are drained with the JSONL sinks (PostgreSQL, Kafka).
	ExtraSinks []sinks.Sink
	// Metrics and Logger as for ProcessorConfig.
	Metrics *Metrics
	Logger  *slog.Logger
	// stopAfter, for crash tests, returns errCrash after that many lines
	// without a final commit.
	stopAfter int
}

// Summary is replay's one-line result (the command-line contract).
type Summary struct {
	Events             int    `json:"events"`
	Processed          int    `json:"processed"`
	DeadLettered       int    `json:"dead_lettered"`
	Duplicates         int    `json:"duplicates"`
	Late               int    `json:"late"`
	ExceptionsOpened   int    `json:"exceptions_opened"`
	ExceptionsUpdated  int    `json:"exceptions_updated"`
	ExceptionsResolved int    `json:"exceptions_resolved"`
	TimersFired        int    `json:"timers_fired"`
	RulesetVersion     string `json:"ruleset_version"`
}

// replayPos is what replay stores as the input position: where to resume
// and the totals so far, so a resumed run reports the same summary.
type replayPos struct {
	InputID string  `json:"input_id"`
	Offset  int64   `json:"offset"`
	Line    int64   `json:"line"`
	Summary Summary `json:"summary"`
}

// ErrOtherInput is returned when a data dir holds a replay of another file.
var ErrOtherInput = errors.New("engine: the data dir holds the state of a replay of another events file; use a new --data dir")

var errCrash = errors.New("engine: simulated crash")

// maxLine bounds one input line; longer lines are dead-lettered.
const maxLine = 1 << 20

// Replay runs the events file through intake, processor and sinks with an
// event-time clock. Output is deterministic: the same input and rules give
// byte-identical files. An interrupted replay rerun on the same data dir
// resumes where its last batch committed and ends with the same output.
func Replay(ctx context.Context, cfg ReplayConfig) (Summary, error) {
	if cfg.BatchLines <= 0 {
		cfg.BatchLines = 2000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f, err := os.Open(cfg.EventsPath)
	if err != nil {
		return Summary{}, fmt.Errorf("engine: %w", err)
	}
	defer f.Close()
	inputID, err := fileID(f)
	if err != nil {
		return Summary{}, err
	}
	store, err := state.Open(cfg.DataDir, state.Options{Logger: cfg.Logger})
	if err != nil {
		return Summary{}, err
	}
	defer store.Close()
	p, err := NewProcessor(ProcessorConfig{Store: store, Rules: cfg.Rules, CacheEntries: cfg.CacheEntries, Metrics: cfg.Metrics, KPI: drainsKPI(cfg.ExtraSinks),
		Logger: cfg.Logger, KeyClock: true})
	if err != nil {
		return Summary{}, err
	}
	defer p.Close()
	stored, err := p.Position()
	if err != nil {
		return Summary{}, err
	}
	pos := replayPos{InputID: inputID}
	if len(stored.Input) > 0 {
		if err := json.Unmarshal(stored.Input, &pos); err != nil {
			return Summary{}, fmt.Errorf("engine: stored replay position: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			return Summary{}, err
		}
		if pos.InputID != inputID || st.Size() < pos.Offset {
			return Summary{}, ErrOtherInput
		}
	}
	clock := NewEventClock(stored.Watermark)

	outs := append([]sinks.Sink{
		sinks.NewJSONL("jsonl-exceptions", cfg.OutPath, state.StreamExceptions, false),
		sinks.NewJSONL("jsonl-deadletter", cfg.DLQPath, state.StreamDeadLetter, false),
	}, cfg.ExtraSinks...)
	var drainers []*sinks.Drainer
	for _, s := range outs {
		d, err := sinks.NewDrainer(store, s, sinks.WithLogger(cfg.Logger))
		if err != nil {
			return Summary{}, err
		}
		defer s.Close()
		drainers = append(drainers, d)
	}
	drain := func() error {
		for _, d := range drainers {
			if _, err := d.Drain(ctx); err != nil {
				return err
			}
		}
		return pruneOutbox(store, drainers)
	}
	// Deliver what a previous run committed but did not drain.
	if err := drain(); err != nil {
		return Summary{}, err
	}

	if _, err := f.Seek(pos.Offset, io.SeekStart); err != nil {
		return Summary{}, err
	}
	r := bufio.NewReaderSize(f, 256<<10)
	intake := NewIntake(IntakeConfig{})
	base := pos.Summary
	base.RulesetVersion = cfg.Rules.Current().Version
	summary := func() Summary {
		s := base
		s.Duplicates += p.Counts.Duplicates
		s.Late += p.Counts.Late
		s.ExceptionsOpened += p.Counts.Opened
		s.ExceptionsUpdated += p.Counts.Updated
		s.ExceptionsResolved += p.Counts.Resolved
		s.TimersFired += p.Counts.TimersFired
		return s
	}
	commit := func(sync bool) error {
		pos.Summary = summary()
		in, _ := json.Marshal(pos)
		if err := p.Commit(Position{Input: in, Watermark: clock.Watermark()}, sync); err != nil {
			return err
		}
		return drain()
	}
	var legs []sources.Event
	var long []byte
	lines := 0
	for {
		if err := ctx.Err(); err != nil {
			return summary(), err
		}
		line, rerr := r.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			// Keep reading to the end of an overlong line, then reject it whole.
			long = append(long[:0], line...)
			for errors.Is(rerr, bufio.ErrBufferFull) {
				line, rerr = r.ReadSlice('\n')
				if len(long) < maxLine+1 {
					long = append(long, line...)
				}
			}
			line = long
		}
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return summary(), fmt.Errorf("engine: read %s: %w", cfg.EventsPath, rerr)
		}
		if len(line) == 0 && rerr != nil {
			break
		}
		pos.Offset += int64(len(line))
		pos.Line++
		raw := bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(raw)) > 0 {
			base.Events++
			var rej *Rejection
			if len(raw) > maxLine {
				rej = &Rejection{Reason: fmt.Sprintf("line is longer than %d bytes", maxLine)}
			} else {
				legs, rej = intake.Accept(legs[:0], raw, clock.Now())
			}
			if rej != nil {
				base.DeadLettered++
				if err := p.DeadLetter(NewDeadLetter(rej, cfg.EventsPath, pos.Line, raw)); err != nil {
					return summary(), err
				}
			} else {
				base.Processed++
				for i := range legs {
					clock.Observe(legs[i].EventTime)
					now := clock.Now().UnixNano()
					if err := p.FireTimers(now); err != nil {
						return summary(), err
					}
					if err := p.Apply(&legs[i], now); err != nil {
						return summary(), err
					}
				}
			}
		}
		lines++
		if cfg.stopAfter > 0 && lines >= cfg.stopAfter {
			return summary(), errCrash
		}
		if lines%cfg.BatchLines == 0 {
			if err := commit(cfg.Sync); err != nil {
				return summary(), err
			}
		}
		if rerr != nil {
			break
		}
	}
	if err := commit(true); err != nil {
		return summary(), err
	}
	return summary(), nil
}

// fileID identifies an input file by its first 64 KiB; with the size check
// at resume, a data dir is not resumed against a different file (a file that
// grew by appending is the same input).
func fileID(f *os.File) (string, error) {
	buf := make([]byte, 64<<10)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	sum := sha256.Sum256(buf[:n])
	return hex.EncodeToString(sum[:8]), nil
}

// drainsKPI reports whether a sink drains a KPI stream: only then does the
// processor write them.
func drainsKPI(ss []sinks.Sink) bool {
	for _, s := range ss {
		if st := s.Stream(); st == state.StreamStock || st == state.StreamCounts {
			return true
		}
	}
	return false
}

// pruneOutbox deletes outbox rows every sink of their stream has delivered.
func pruneOutbox(store *state.Store, drainers []*sinks.Drainer) error {
	low := map[state.Stream]uint64{}
	for _, d := range drainers {
		s := d.Sink().Stream()
		if c, ok := low[s]; !ok || d.Cursor() < c {
			low[s] = d.Cursor()
		}
	}
	for s, c := range low {
		if c > 0 {
			if err := store.PruneOutbox(s, c); err != nil {
				return err
			}
		}
	}
	return nil
}
