package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/sinks/postgres"
	"github.com/skuwatch/skuwatch/sinks/postgres/pgtest"
	"github.com/skuwatch/skuwatch/state"
)

var t0 = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)

func open(t *testing.T, dsn, schema string, o postgres.Options) *postgres.DB {
	t.Helper()
	o.Schema = schema
	db, err := postgres.Open(context.Background(), dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func exceptionRow(id string, version int, status string, detected time.Time) state.Exception {
	x := state.Exception{ExceptionID: id, Rule: "negative_stock", SKU: "SKU-" + id, Location: "ST01", Category: "grocery",
		Severity: 3, Score: 55, Status: status, Change: "updated", DetectedAt: detected, UpdatedAt: detected.Add(time.Duration(version) * time.Hour),
		EventTime: detected, RulesetVersion: "2026.06", Route: "location", Owner: "store:ST01", SLADueAt: detected.Add(4 * time.Hour),
		Evidence: map[string]any{"on_hand": -2, "v": version}, FinancialImpact: 12.5, TriggerSource: "pos", TriggerEventID: "e" + id, Version: version}
	if version == 1 {
		x.Change = "opened"
	}
	if status == state.StatusResolved {
		r := x.UpdatedAt
		x.ResolvedAt, x.Change, x.ResolutionCause = &r, "resolved", "count restored the ledger"
	}
	return x
}

func rows(t *testing.T, vs ...any) []state.Row {
	var out []state.Row
	for i, v := range vs {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, state.Row{Seq: uint64(i + 1), Value: j})
	}
	return out
}

func TestMigrateIsIdempotentAndLocked(t *testing.T) {
	schema := pgtest.Schema(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			db, err := postgres.Open(context.Background(), pgtest.DSN(), postgres.Options{Schema: schema})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	open(t, pgtest.DSN(), schema, postgres.Options{}) // and once more
	admin := pgtest.Connect(t)
	var n, distinct int
	if err := admin.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT version) FROM "+schema+".schema_migrations").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 3 || distinct != 3 {
		t.Errorf("schema_migrations holds %d rows (%d versions), want the 3 migrations once each", n, distinct)
	}
	// An edited migration is refused.
	if _, err := admin.Exec(context.Background(), "UPDATE "+schema+".schema_migrations SET checksum = 'edited' WHERE version = 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(context.Background(), pgtest.DSN(), postgres.Options{Schema: schema}); err == nil || !strings.Contains(err.Error(), "different file") {
		t.Errorf("edited migration: got %v", err)
	}
}

func TestExceptionsKeepTheNewestVersion(t *testing.T) {
	schema := pgtest.Schema(t)
	rs, err := rules.Load("default.yaml", rules.Default)
	if err != nil {
		t.Fatal(err)
	}
	db := open(t, pgtest.DSN(), schema, postgres.Options{Rules: func() *rules.Ruleset { return rs }})
	s := db.Exceptions("pg")
	ctx := context.Background()
	// v1 and v3 in one write, then v2 late and v1 again: the row stays v3
	// and every version is in the change log once.
	if _, err := s.Write(ctx, rows(t, exceptionRow("a", 1, "open", t0), exceptionRow("a", 3, "resolved", t0), exceptionRow("b", 1, "open", t0))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, rows(t, exceptionRow("a", 2, "open", t0), exceptionRow("a", 1, "open", t0))); err != nil {
		t.Fatal(err)
	}
	admin := pgtest.Connect(t)
	var version int
	var status, delay string
	var hours float64
	var met bool
	if err := admin.QueryRow(ctx, "SELECT version, status, resolution_hours, sla_met, coalesce(delay_cause, '') FROM "+schema+".exceptions WHERE exception_id = 'a'").
		Scan(&version, &status, &hours, &met, &delay); err != nil {
		t.Fatal(err)
	}
	if version != 3 || status != "resolved" || hours != 3 || !met || delay != "" {
		t.Errorf("row a: version %d status %s hours %v sla_met %v delay %q, want 3 resolved 3 true none", version, status, hours, met, delay)
	}
	var changes int
	admin.QueryRow(ctx, "SELECT count(*) FROM "+schema+".exception_changes").Scan(&changes)
	if changes != 4 {
		t.Errorf("%d changes, want 4 (a v1–v3, b v1)", changes)
	}
	var skus, locations, rulesets, ruleRows int
	admin.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+schema+".dim_sku), (SELECT count(*) FROM "+schema+".dim_location), (SELECT count(*) FROM "+schema+".dim_ruleset), (SELECT count(*) FROM "+schema+".dim_rule)").
		Scan(&skus, &locations, &rulesets, &ruleRows)
	if skus != 2 || locations != 1 || rulesets != 1 || ruleRows != len(rs.Rules) {
		t.Errorf("dimensions: %d skus, %d locations, %d rulesets, %d rules; want 2, 1, 1, %d", skus, locations, rulesets, ruleRows, len(rs.Rules))
	}
	// A resolution after its SLA says so.
	late := exceptionRow("c", 6, "resolved", t0)
	if _, err := s.Write(ctx, rows(t, late)); err != nil {
		t.Fatal(err)
	}
	admin.QueryRow(ctx, "SELECT delay_cause FROM "+schema+".exceptions WHERE exception_id = 'c'").Scan(&delay)
	if delay != "resolved_after_sla" {
		t.Errorf("late resolution: delay_cause %q", delay)
	}
}

func TestBadRowIsPermanent(t *testing.T) {
	db := open(t, pgtest.DSN(), pgtest.Schema(t), postgres.Options{})
	_, err := db.Exceptions("pg").Write(context.Background(), []state.Row{{Seq: 1, Value: []byte("{not json")}})
	if !errors.Is(err, sinks.ErrPermanent) {
		t.Errorf("got %v, want a permanent error", err)
	}
}

func TestReaderRoleOnlyReads(t *testing.T) {
	schema := pgtest.Schema(t, "pbi_"+t.Name())
	open(t, pgtest.DSN(), schema, postgres.Options{})
	admin := pgtest.Connect(t)
	ctx := context.Background()
	login := pgx.Identifier{"pbi_" + t.Name()}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+login); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE ROLE "+login+" LOGIN IN ROLE "+pgx.Identifier{postgres.ReaderRole(schema)}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, pgtest.As(t, "pbi_"+t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, view := range []string{"exceptions", "kpi_stockout_daily", "kpi_inventory_accuracy_weekly", "kpi_resolution_time",
		"kpi_sla_adherence", "kpi_open_by_age", "kpi_financial_impact", "dim_date", "dim_sku"} {
		if _, err := c.Exec(ctx, "SELECT * FROM "+schema+"."+view+" LIMIT 1"); err != nil {
			t.Errorf("reader cannot read %s: %v", view, err)
		}
	}
	for _, stmt := range []string{
		"INSERT INTO " + schema + ".dim_location (location, first_seen) VALUES ('X', now())",
		"DELETE FROM " + schema + ".exceptions",
		"UPDATE " + schema + ".accuracy_tolerance SET rel = 1",
		"SELECT * FROM " + schema + ".schema_migrations",
		"CREATE TABLE " + schema + ".mine (x int)",
	} {
		_, err := c.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("reader: %s: got %v, want permission denied (42501)", stmt, err)
		}
	}
}

func TestWriterNeedsNoSuperuser(t *testing.T) {
	writer := "writer_" + strings.ToLower(t.Name())
	schema := pgtest.Schema(t, writer)
	admin := pgtest.Connect(t)
	ctx := context.Background()
	id := pgx.Identifier{writer}.Sanitize()
	admin.Exec(ctx, "DROP ROLE IF EXISTS "+id)
	var db string
	admin.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	for _, q := range []string{"CREATE ROLE " + id + " LOGIN NOSUPERUSER CREATEROLE", "GRANT CREATE ON DATABASE " + pgx.Identifier{db}.Sanitize() + " TO " + id} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	w := open(t, pgtest.As(t, writer), schema, postgres.Options{})
	if _, err := w.Exceptions("pg").Write(ctx, rows(t, exceptionRow("a", 1, "open", t0))); err != nil {
		t.Fatalf("writer without superuser: %v", err)
	}
}

// TestConnectionDropsLoseNothing drains an outbox of 20,000 exception
// versions while another session terminates the sink's connections again
// and again: the drainer retries, and the tables end complete.
func TestConnectionDropsLoseNothing(t *testing.T) {
	schema := pgtest.Schema(t)
	// Its own application name, so that only this test's connections die.
	app := "skuwatch-test-" + schema
	db := open(t, withParam(t, pgtest.DSN(), "application_name", app), schema, postgres.Options{})
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const ids, versions = 3000, 4
	b := store.NewBatch()
	seq := uint64(0)
	for v := 1; v <= versions; v++ {
		for i := 0; i < ids; i++ {
			j, _ := json.Marshal(exceptionRow(fmt.Sprint(i), v, "open", t0))
			seq++
			if err := b.Append(state.StreamExceptions, seq, j); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	d, err := sinks.NewDrainer(store, db.Exceptions("pg"), sinks.WithBatchSize(200))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin, killer := pgtest.Connect(t), pgtest.Connect(t) // a pgx.Conn is for one goroutine
	var killed atomic.Int64
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for ctx.Err() == nil {
			var n int
			killer.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
				app).Scan(&n)
			killed.Add(int64(n))
			time.Sleep(150 * time.Millisecond)
		}
	}()
	done := make(chan error, 1)
	notify := make(chan struct{})
	go func() { done <- d.Run(ctx, notify, 10*time.Millisecond) }()
	deadline := time.Now().Add(60 * time.Second)
	for d.Cursor() < seq && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	<-killerDone
	if d.Cursor() != seq {
		t.Fatalf("cursor %d of %d after 60s", d.Cursor(), seq)
	}
	if killed.Load() == 0 {
		t.Fatal("no connection was terminated: the test tested nothing")
	}
	var rowsN, changes, wrong int
	if err := admin.QueryRow(context.Background(), "SELECT count(*), count(*) FILTER (WHERE version <> $1) FROM "+schema+".exceptions", versions).Scan(&rowsN, &wrong); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM "+schema+".exception_changes").Scan(&changes); err != nil {
		t.Fatal(err)
	}
	if rowsN != ids || wrong != 0 || changes != ids*versions {
		t.Errorf("after %d terminated connections: %d rows (%d not at v%d), %d changes; want %d rows, %d changes", killed.Load(), rowsN, wrong, versions, changes, ids, ids*versions)
	}
}

// TestKPIViews checks every KPI view against figures worked out by hand.
func TestKPIViews(t *testing.T) {
	schema := pgtest.Schema(t)
	db := open(t, pgtest.DSN(), schema, postgres.Options{})
	ctx := context.Background()
	day := func(d, h int) time.Time { return time.Date(2026, 6, d, h, 0, 0, 0, time.UTC) }
	// SKU1@ST01 opens in stock on June 1, is out from June 2 15:00 to June 4
	// 09:00 (days 2, 3, 4); SKU2@ST01 opens on June 3 and stays in stock.
	// The data runs through June 5 12:00: 5 + 3 = 8 SKU-location-days, 3 out.
	stock := rows(t,
		state.StockChange{SKU: "SKU1", Location: "ST01", Category: "grocery", Seq: 1, At: day(1, 10), OnHand: 5},
		state.StockChange{SKU: "SKU1", Location: "ST01", Category: "grocery", Seq: 2, At: day(2, 15), OutOfStock: true},
		state.StockChange{SKU: "SKU1", Location: "ST01", Category: "grocery", Seq: 3, At: day(4, 9), OnHand: 12},
		state.StockChange{SKU: "SKU2", Location: "ST01", Category: "grocery", Seq: 1, At: day(3, 8), OnHand: 3})
	if _, err := db.Stock("pg-stock").Write(ctx, stock); err != nil {
		t.Fatal(err)
	}
	// Four counts in the week of June 1: variances 0, 1, -3, 0.5.
	counts := rows(t,
		state.CountRecord{SKU: "SKU1", Location: "ST01", Category: "grocery", CountedAt: day(1, 9), Source: "wms", Counted: 10, System: 10, UnitCost: 2, Version: 1},
		state.CountRecord{SKU: "SKU2", Location: "ST01", Category: "grocery", CountedAt: day(2, 9), Source: "wms", Counted: 21, System: 20, Variance: 1, UnitCost: 2, Version: 1},
		state.CountRecord{SKU: "SKU3", Location: "ST01", Category: "grocery", CountedAt: day(3, 9), Source: "wms", Counted: 7, System: 10, Variance: -3, UnitCost: 2, Version: 1},
		state.CountRecord{SKU: "SKU4", Location: "ST01", Category: "grocery", CountedAt: day(4, 9), Source: "wms", Counted: 100.5, System: 100, Variance: 0.5, UnitCost: 2, Version: 1},
		// a later version of the third count: the late sale it missed
		state.CountRecord{SKU: "SKU3", Location: "ST01", Category: "grocery", CountedAt: day(3, 9), Source: "wms", Counted: 7, System: 9, Variance: -2, UnitCost: 2, Version: 2})
	if _, err := db.Counts("pg-counts").Write(ctx, counts); err != nil {
		t.Fatal(err)
	}
	// Three resolved in 2h, 4h and 10h (SLA 4h: two met), one open since June
	// 5 06:00 (6h old, past its SLA).
	var xs []any
	for i, hours := range []int{2, 4, 10} {
		x := exceptionRow(fmt.Sprint("r", i), 2, state.StatusResolved, day(2, 8))
		r := day(2, 8).Add(time.Duration(hours) * time.Hour)
		x.UpdatedAt, x.ResolvedAt, x.FinancialImpact = r, &r, float64(10*(i+1))
		xs = append(xs, x)
	}
	open := exceptionRow("o", 1, state.StatusOpen, day(5, 6))
	open.EventTime, open.SLADueAt, open.FinancialImpact = day(5, 12), day(5, 10), 5
	xs = append(xs, open)
	if _, err := db.Exceptions("pg").Write(ctx, rows(t, xs...)); err != nil {
		t.Fatal(err)
	}

	admin := pgtest.Connect(t)
	q := func(sql string, dst ...any) {
		t.Helper()
		if err := admin.QueryRow(ctx, strings.ReplaceAll(sql, "S.", schema+"."), nil...).Scan(dst...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var keyDays, outDays int
	var rate float64
	q("SELECT sum(sku_location_days), sum(stockout_days), sum(stockout_days)::float8 / sum(sku_location_days) FROM S.kpi_stockout_daily", &keyDays, &outDays, &rate)
	if keyDays != 8 || outDays != 3 || rate != 0.375 {
		t.Errorf("stockout: %d of %d key-days (%v), want 3 of 8", outDays, keyDays, rate)
	}
	var days int
	q("SELECT count(*) FROM S.kpi_stockout_daily WHERE day = '2026-06-03' AND sku_location_days = 2 AND stockout_days = 1", &days)
	if days != 1 {
		t.Error("June 3 is not 1 out of 2")
	}
	var counted, accurate int
	var acc float64
	q("SELECT records_counted, records_accurate, accuracy FROM S.kpi_inventory_accuracy_weekly WHERE week = '2026-06-01' AND location = 'ST01'", &counted, &accurate, &acc)
	if counted != 4 || accurate != 1 || acc != 0.25 {
		t.Errorf("accuracy at zero tolerance: %d of %d (%v), want 1 of 4", accurate, counted, acc)
	}
	if _, err := admin.Exec(ctx, "INSERT INTO "+schema+".accuracy_tolerance VALUES ('grocery', 1, 0)"); err != nil {
		t.Fatal(err)
	}
	q("SELECT records_accurate FROM S.kpi_inventory_accuracy_weekly WHERE week = '2026-06-01'", &accurate)
	if accurate != 3 {
		t.Errorf("accuracy within 1 unit for grocery: %d of 4, want 3", accurate)
	}
	var resolved int
	var mean, p50, p90 float64
	q("SELECT resolved, mean_hours, p50_hours, p90_hours FROM S.kpi_resolution_time WHERE week = '2026-06-01' AND rule = 'negative_stock'", &resolved, &mean, &p50, &p90)
	if resolved != 3 || fmt.Sprintf("%.3f %.1f %.1f", mean, p50, p90) != "5.333 4.0 8.8" {
		t.Errorf("resolution: %d, mean %v p50 %v p90 %v; want 3, 5.333, 4, 8.8", resolved, mean, p50, p90)
	}
	var due, met, late, pastDue int
	q("SELECT sum(due), sum(met), sum(resolved_late), sum(open_past_due) FROM S.kpi_sla_adherence", &due, &met, &late, &pastDue)
	if due != 4 || met != 2 || late != 1 || pastDue != 1 {
		t.Errorf("SLA: due %d met %d late %d open %d, want 4 2 1 1", due, met, late, pastDue)
	}
	var bucket string
	var openN, pastSLA int
	q("SELECT age_bucket, open_exceptions, past_sla FROM S.kpi_open_by_age", &bucket, &openN, &pastSLA)
	if bucket != "4-24h" || openN != 1 || pastSLA != 1 {
		t.Errorf("open by age: %s %d %d, want 4-24h 1 1", bucket, openN, pastSLA)
	}
	var impact, openImpact float64
	q("SELECT sum(financial_impact), sum(open_impact) FROM S.kpi_financial_impact", &impact, &openImpact)
	if impact != 65 || openImpact != 5 {
		t.Errorf("impact %v (open %v), want 65 (5)", impact, openImpact)
	}
	var dates int
	q("SELECT count(*) FROM S.dim_date", &dates)
	if dates != 5 {
		t.Errorf("dim_date has %d days, want June 1–5", dates)
	}
}

func TestSnapshot(t *testing.T) {
	schema := pgtest.Schema(t)
	db := open(t, pgtest.DSN(), schema, postgres.Options{})
	ctx := context.Background()
	c, err := postgres.Connect(ctx, pgtest.DSN(), schema)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if day, err := postgres.LatestDay(ctx, c); err != nil || !day.IsZero() {
		t.Fatalf("empty tables: latest day %v, %v", day, err)
	}
	s, err := postgres.TakeSnapshot(ctx, c, t0, t0.Add(24*time.Hour))
	if err != nil || s.StockoutRate != nil || s.Detected != 0 {
		t.Fatalf("empty snapshot: %+v, %v", s, err)
	}
	r1 := exceptionRow("a", 2, state.StatusResolved, t0) // resolved in 2h, within SLA
	r2 := exceptionRow("b", 1, state.StatusOpen, t0.Add(time.Hour))
	stock := rows(t, state.StockChange{SKU: "S", Location: "L", Seq: 1, At: t0, OutOfStock: true})
	if _, err := db.Exceptions("pg").Write(ctx, rows(t, r1, r2)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Stock("pg-stock").Write(ctx, stock); err != nil {
		t.Fatal(err)
	}
	until, err := postgres.LatestDay(ctx, c)
	if err != nil || !until.Equal(time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("latest day %v, %v", until, err)
	}
	s, err = postgres.TakeSnapshot(ctx, c, t0.Truncate(24*time.Hour), until)
	if err != nil {
		t.Fatal(err)
	}
	if s.Detected != 2 || s.Resolved != 1 || *s.MeanResolutionH != 2 || s.OpenAtUntil != 1 || s.FinancialImpact != 25 ||
		*s.StockoutRate != 1 || s.SLADue != 1 || *s.SLAAdherence != 1 || s.InventoryAccuracy != nil {
		t.Errorf("snapshot: %+v", s)
	}
}

// proxy forwards TCP connections to PostgreSQL until it is cut: then it
// closes every connection and refuses new ones, as a server that is down.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.set(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) set(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestOutageLosesNothing: PostgreSQL goes away while the outbox keeps
// growing; the drainer retries with backoff and, once it is back, the
// tables are complete.
func TestOutageLosesNothing(t *testing.T) {
	u, err := url.Parse(pgtest.DSN())
	if err != nil || u.Host == "" {
		t.Skip("needs SKUWATCH_TEST_POSTGRES as a postgres:// URL with a host")
	}
	px := newProxy(t, u.Host)
	u.Host = px.ln.Addr().String()
	schema := pgtest.Schema(t)
	db := open(t, u.String(), schema, postgres.Options{})
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d, err := sinks.NewDrainer(store, db.Exceptions("pg"), sinks.WithBatchSize(100))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	notify := make(chan struct{}, 1)
	go func() { done <- d.Run(ctx, notify, 20*time.Millisecond) }()
	seq := uint64(0)
	appendRows := func(n int) {
		b := store.NewBatch()
		for i := 0; i < n; i++ {
			seq++
			j, _ := json.Marshal(exceptionRow(fmt.Sprint(seq), 1, "open", t0))
			if err := b.Append(state.StreamExceptions, seq, j); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		select {
		case notify <- struct{}{}:
		default:
		}
	}
	waitCursor := func(want uint64) {
		deadline := time.Now().Add(30 * time.Second)
		for d.Cursor() < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if d.Cursor() < want {
			t.Fatalf("cursor %d, want %d", d.Cursor(), want)
		}
	}
	appendRows(500)
	waitCursor(500)
	px.set(true) // down
	for i := 0; i < 5; i++ {
		appendRows(200) // the engine goes on; the outbox grows
		time.Sleep(50 * time.Millisecond)
	}
	head, _ := store.OutboxHead(state.StreamExceptions)
	if behind := head - d.Cursor(); behind < 1000 {
		t.Errorf("while PostgreSQL is down the sink is %d rows behind, want all 1000 new ones", behind)
	}
	px.set(false) // back
	waitCursor(seq)
	cancel()
	<-done
	var n int
	pgtest.Connect(t).QueryRow(context.Background(), "SELECT count(*) FROM "+schema+".exceptions").Scan(&n)
	if n != int(seq) {
		t.Errorf("%d rows after the outage, want %d", n, seq)
	}
}

// withParam adds a query parameter to a postgres:// URL.
func withParam(t *testing.T, dsn, k, v string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skipf("needs SKUWATCH_TEST_POSTGRES as a postgres:// URL: %q", dsn)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}
