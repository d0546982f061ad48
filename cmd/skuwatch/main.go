// Command skuwatch is the real-time stock exception engine.
//
//	skuwatch run --config skuwatch.yaml
//	skuwatch replay --rules F --events F.jsonl --out F.jsonl --dlq F.jsonl [--data DIR]
//	skuwatch rules check F | skuwatch rules test F
//	skuwatch demo [flags]
//	skuwatch generate [flags]
//
// Exit status: 0 ok, 1 a failure the user must fix (bad rules, bad flags,
// bad input files), 2 an internal error.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// userError is a failure the user must fix: exit status 1.
type userError struct{ err error }

func (e userError) Error() string { return e.err.Error() }
func (e userError) Unwrap() error { return e.err }

func userErr(format string, args ...any) error { return userError{fmt.Errorf(format, args...)} }

const usage = `usage: skuwatch <command> [flags]

commands:
  run        the service: intake and processor stages on Kafka, sinks, /metrics
  replay     run an events file through the engine with an event-time clock
  rules      check or test a rule file: skuwatch rules check|test FILE
  demo       a retail chain's stream through an in-process Kafka and the engine, scored
  generate   write a synthetic retail stream (events and labels) to files
  kpi        the KPI values of a period from the PostgreSQL tables (table or --json)

run 'skuwatch <command> -h' for its flags
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 1
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "replay":
		err = cmdReplay(args[1:], stdout, stderr)
	case "rules":
		err = cmdRules(args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(args[1:], stdout, stderr)
	case "generate":
		err = cmdGenerate(args[1:], stdout, stderr)
	case "kpi":
		err = cmdKPI(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "skuwatch: unknown command %q\n\n%s", args[0], usage)
		return 1
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "skuwatch %s: %v\n", args[0], err)
	var ue userError
	if errors.As(err, &ue) {
		return 1
	}
	return 2
}
