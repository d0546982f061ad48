package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sinks/postgres"
)

// pgFlags are the PostgreSQL flags of replay and demo.
type pgFlags struct{ dsn, schema *string }

func addPostgresFlags(fs *flag.FlagSet) pgFlags {
	return pgFlags{
		dsn: fs.String("postgres", "", "also write exceptions, stock changes and counts to this PostgreSQL (a libpq URL or key=value DSN; "+
			"PGPASSWORD and ~/.pgpass are honoured)"),
		schema: fs.String("postgres-schema", postgres.DefaultSchema, "PostgreSQL schema of the tables"),
	}
}

// open migrates and returns the database, or nil without --postgres.
func (f pgFlags) open(ctx context.Context, rs func() *rules.Ruleset) (*postgres.DB, error) {
	if *f.dsn == "" {
		return nil, nil
	}
	db, err := postgres.Open(ctx, *f.dsn, postgres.Options{Schema: *f.schema, Rules: rs})
	if err != nil {
		return nil, userError{err}
	}
	return db, nil
}

func cmdKPI(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kpi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("postgres", "", "the PostgreSQL skuwatch writes to (required; the reader role will do)")
	schema := fs.String("postgres-schema", postgres.DefaultSchema, "PostgreSQL schema of the tables")
	sinceF := fs.String("since", "", "period start, a UTC date (2026-06-01) or RFC 3339 time (default: 28 days before --until)")
	untilF := fs.String("until", "", "period end, exclusive (default: the day after the newest data)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	if err := fs.Parse(args); err != nil {
		return userError{err}
	}
	if *dsn == "" {
		return userErr("--postgres is required")
	}
	if fs.NArg() > 0 {
		return userErr("unexpected arguments %q", fs.Args())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := postgres.Connect(ctx, *dsn, *schema)
	if err != nil {
		return userError{err}
	}
	defer c.Close(context.Background())
	until, err := periodBound("--until", *untilF)
	if err != nil {
		return err
	}
	if until.IsZero() {
		if until, err = postgres.LatestDay(ctx, c); err != nil {
			return err
		}
		if until.IsZero() {
			return userErr("the tables in schema %s hold no data yet: give --since and --until", *schema)
		}
	}
	since, err := periodBound("--since", *sinceF)
	if err != nil {
		return err
	}
	if since.IsZero() {
		since = until.Add(-28 * 24 * time.Hour)
	}
	if !since.Before(until) {
		return userErr("--since %s is not before --until %s", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	s, err := postgres.TakeSnapshot(ctx, c, since, until)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	printSnapshot(stdout, s)
	return nil
}

func periodBound(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, userErr("%s %q: want a date like 2026-06-01 or an RFC 3339 time", flagName, v)
	}
	return t.UTC(), nil
}

func printSnapshot(w io.Writer, s postgres.Snapshot) {
	through := "no data"
	if s.DataThrough != nil {
		through = "data through " + s.DataThrough.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "KPIs %s to %s (until excluded; %s)\n", s.Since.Format(time.RFC3339), s.Until.Format(time.RFC3339), through)
	fmt.Fprintf(w, "  %-27s %9s   %d of %d SKU-location-days at or below zero\n", "stockout rate", pct(s.StockoutRate), s.StockoutDays, s.SKULocationDays)
	fmt.Fprintf(w, "  %-27s %9s   %d of %d counts within tolerance\n", "inventory record accuracy", pct(s.InventoryAccuracy), s.CountsAccurate, s.CountsTaken)
	fmt.Fprintf(w, "  %-27s %9s   p50 %s, p90 %s; %d resolved\n", "resolution time (mean)", hours(s.MeanResolutionH), hours(s.P50ResolutionH), hours(s.P90ResolutionH), s.Resolved)
	fmt.Fprintf(w, "  %-27s %9s   %d of %d resolved by their SLA\n", "SLA adherence", pct(s.SLAAdherence), s.SLAMet, s.SLADue)
	fmt.Fprintf(w, "  %-27s %9d\n", "exceptions detected", s.Detected)
	fmt.Fprintf(w, "  %-27s %9d\n", "open at period end", s.OpenAtUntil)
	fmt.Fprintf(w, "  %-27s %9.2f   of the exceptions detected\n", "financial impact", s.FinancialImpact)
}

func pct(r *float64) string {
	if r == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f %%", *r*100)
}

func hours(h *float64) string {
	if h == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f h", *h)
}
