// Package postgres is the PostgreSQL sink: the exception, stock and count
// tables and KPI views that Power BI reads (docs/powerbi.md), with embedded,
// versioned migrations.
//
// Each outbox stream has its own sink (and so its own cursor): Exceptions,
// Stock and Counts. A Write is one transaction; its rows are upserted so that
// a redelivered or reordered row never replaces a newer version, and the
// drainer moves the cursor only after the transaction commits.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/state"
)

// DefaultSchema holds skuwatch's tables unless configured otherwise.
const DefaultSchema = "skuwatch"

// ApplicationName marks the sink's connections (pg_stat_activity) unless
// the DSN names one.
const ApplicationName = "skuwatch-sink"

// Options configure Open.
type Options struct {
	// Schema is created if missing. The default is DefaultSchema.
	Schema string
	// Rules, if set, gives the running ruleset; each version the sink meets
	// is recorded in dim_ruleset and dim_rule with its change note.
	Rules func() *rules.Ruleset
	// MaxConns bounds the pool. The default is 8.
	MaxConns int32
}

// DB is a migrated database shared by the sinks of every partition.
type DB struct {
	pool   *pgxpool.Pool
	schema string
	rules  func() *rules.Ruleset

	mu       sync.Mutex
	migrated bool
	rulesets map[string]bool // recorded in this process
}

// Open connects to dsn and applies the migrations.
func Open(ctx context.Context, dsn string, o Options) (*DB, error) {
	db, err := New(dsn, o)
	if err != nil {
		return nil, err
	}
	if err := db.ensure(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// New is Open without connecting: the migrations are applied before the
// first write, so a service can start while PostgreSQL is down (its sinks
// retry, and the outbox holds the rows meanwhile).
func New(dsn string, o Options) (*DB, error) {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg.MaxConns = 8
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	// Ping before every transaction (a round trip next to hundreds of rows):
	// a connection the server dropped while it was idle in the pool — a
	// restart, a failover, pg_terminate_backend — is replaced instead of
	// failing the write.
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return true }
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = ApplicationName
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{o.Schema}.Sanitize()
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &DB{pool: pool, schema: o.Schema, rules: o.Rules, rulesets: map[string]bool{}}, nil
}

// ensure applies the migrations once.
func (db *DB) ensure(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.migrated {
		return nil
	}
	if err := Migrate(ctx, db.pool, db.schema); err != nil {
		return err
	}
	db.migrated = true
	return nil
}

// Pool is the connection pool (for queries such as the KPI snapshot).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Schema is the schema the tables are in.
func (db *DB) Schema() string { return db.schema }

// Close closes the pool.
func (db *DB) Close() { db.pool.Close() }

// Exceptions is the sink of the exceptions stream (exceptions,
// exception_changes and the dimensions).
func (db *DB) Exceptions(name string) sinks.Sink {
	return &sink{db: db, name: name, stream: state.StreamExceptions, write: db.writeExceptions}
}

// Stock is the sink of the stock stream (stock_changes).
func (db *DB) Stock(name string) sinks.Sink {
	return &sink{db: db, name: name, stream: state.StreamStock, write: db.writeStock}
}

// Counts is the sink of the counts stream (counts).
func (db *DB) Counts(name string) sinks.Sink {
	return &sink{db: db, name: name, stream: state.StreamCounts, write: db.writeCounts}
}

// Sinks are the three sinks, named prefix, prefix-stock and prefix-counts.
func (db *DB) Sinks(prefix string) []sinks.Sink {
	return []sinks.Sink{db.Exceptions(prefix), db.Stock(prefix + "-stock"), db.Counts(prefix + "-counts")}
}

type sink struct {
	db     *DB
	name   string
	stream state.Stream
	// write writes rows in tx; done, if not nil, runs once tx committed.
	write func(ctx context.Context, tx pgx.Tx, rows json.RawMessage) (done func(), err error)
	buf   []byte
}

// Movable implements sinks.Movable: the tables are the same from any
// instance.
func (s *sink) Movable() bool { return true }

func (s *sink) Name() string         { return s.name }
func (s *sink) Stream() state.Stream { return s.stream }

// Open implements sinks.Sink: the tables are the checkpoint (upserts by
// version), so there is nothing to restore.
func (s *sink) Open([]byte) error { return nil }
func (s *sink) Close() error      { return nil }

// Write implements sinks.Sink: every row in one transaction.
func (s *sink) Write(ctx context.Context, rows []state.Row) ([]byte, error) {
	// The rows are JSON objects already: one JSON array is one parameter,
	// which PostgreSQL takes apart with jsonb_to_recordset.
	s.buf = append(s.buf[:0], '[')
	for i, r := range rows {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		s.buf = append(s.buf, r.Value...)
	}
	s.buf = append(s.buf, ']')
	if !json.Valid(s.buf) {
		return nil, fmt.Errorf("%w: postgres: outbox rows %d–%d are not JSON", sinks.ErrPermanent, rows[0].Seq, rows[len(rows)-1].Seq)
	}
	if err := s.db.ensure(ctx); err != nil {
		return nil, err
	}
	var done func()
	err := pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) (err error) {
		done, err = s.write(ctx, tx, s.buf)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", s.name, err)
	}
	if done != nil {
		done()
	}
	return nil, nil
}

const exceptionColumns = `x(exception_id text, rule text, sku text, location text, category text, severity int,
	score float8, status text, change text, detected_at timestamptz, updated_at timestamptz,
	resolved_at timestamptz, event_time timestamptz, ruleset_version text, route text, owner text,
	sla_due_at timestamptz, evidence jsonb, financial_impact float8, verification_steps jsonb,
	contingency text, trigger_source text, trigger_event_id text, resolution_cause text, version int)`

// The current row takes the highest version; an older one never replaces
// it, whatever order rows arrive in.
const upsertExceptions = `
WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS ` + exceptionColumns + `),
changes AS (
	INSERT INTO exception_changes (exception_id, version, change, status, rule, sku, location, severity, score,
		owner, changed_at, event_time, ruleset_version, evidence, financial_impact, trigger_source,
		trigger_event_id, resolution_cause)
	SELECT exception_id, version, change, status, rule, sku, location, severity, score, owner, updated_at,
		event_time, ruleset_version, coalesce(evidence, '{}'), financial_impact, trigger_source,
		trigger_event_id, resolution_cause
	FROM x ORDER BY exception_id, version
	ON CONFLICT (exception_id, version) DO NOTHING),
latest AS (SELECT DISTINCT ON (exception_id) * FROM x ORDER BY exception_id, version DESC)
INSERT INTO exceptions AS e (exception_id, rule, sku, location, category, severity, score, status, last_change,
	detected_at, updated_at, resolved_at, event_time, ruleset_version, route, owner, sla_due_at, evidence,
	financial_impact, verification_steps, contingency, trigger_source, trigger_event_id, resolution_cause,
	delay_cause, version)
SELECT exception_id, rule, sku, location, nullif(category, ''), severity, score, status, change,
	detected_at, updated_at, resolved_at, event_time, ruleset_version, route, owner, sla_due_at,
	coalesce(evidence, '{}'), financial_impact, verification_steps, nullif(contingency, ''),
	trigger_source, trigger_event_id, nullif(resolution_cause, ''),
	CASE WHEN resolved_at > sla_due_at THEN 'resolved_after_sla'
	     WHEN resolved_at IS NULL AND updated_at > sla_due_at THEN 'open_past_sla' END,
	version
FROM latest
ON CONFLICT (exception_id) DO UPDATE SET
	rule = EXCLUDED.rule, sku = EXCLUDED.sku, location = EXCLUDED.location, category = EXCLUDED.category,
	severity = EXCLUDED.severity, score = EXCLUDED.score, status = EXCLUDED.status,
	last_change = EXCLUDED.last_change, detected_at = EXCLUDED.detected_at, updated_at = EXCLUDED.updated_at,
	resolved_at = EXCLUDED.resolved_at, event_time = EXCLUDED.event_time,
	ruleset_version = EXCLUDED.ruleset_version, route = EXCLUDED.route, owner = EXCLUDED.owner,
	sla_due_at = EXCLUDED.sla_due_at, evidence = EXCLUDED.evidence,
	financial_impact = EXCLUDED.financial_impact, verification_steps = EXCLUDED.verification_steps,
	contingency = EXCLUDED.contingency, trigger_source = EXCLUDED.trigger_source,
	trigger_event_id = EXCLUDED.trigger_event_id, resolution_cause = EXCLUDED.resolution_cause,
	delay_cause = EXCLUDED.delay_cause, version = EXCLUDED.version, written_at = now()
WHERE e.version < EXCLUDED.version`

// upsertDims adds the SKUs and locations of rows (their time field is at)
// to the dimensions. In key order, so that
// partitions writing the same SKU lock its row in the same order.
func upsertDims(at string) string {
	return `
WITH x AS (SELECT sku, location, category, ` + at + ` AS at FROM jsonb_to_recordset($1::jsonb) AS x(sku text, location text,
	category text, ` + at + ` timestamptz)),
skus AS (
	INSERT INTO dim_sku AS d (sku, category, first_seen, updated_at)
	SELECT DISTINCT ON (sku) sku, nullif(category, ''), at, at FROM x ORDER BY sku, at DESC
	ON CONFLICT (sku) DO UPDATE SET category = EXCLUDED.category, updated_at = greatest(d.updated_at, EXCLUDED.updated_at)
	WHERE EXCLUDED.category IS NOT NULL AND d.category IS DISTINCT FROM EXCLUDED.category)
INSERT INTO dim_location (location, first_seen)
SELECT location, min(at) FROM x GROUP BY location ORDER BY location
ON CONFLICT (location) DO NOTHING`
}

var (
	exceptionDims = upsertDims("detected_at")
	ruleDims      = `INSERT INTO dim_rule (rule, first_seen)
SELECT rule, min(detected_at) FROM jsonb_to_recordset($1::jsonb) AS x(rule text, detected_at timestamptz)
GROUP BY rule ORDER BY rule
ON CONFLICT (rule) DO NOTHING`
	stockDims = upsertDims("at")
	countDims = upsertDims("counted_at")
)

func (db *DB) writeExceptions(ctx context.Context, tx pgx.Tx, rows json.RawMessage) (func(), error) {
	if _, err := tx.Exec(ctx, upsertExceptions, string(rows)); err != nil {
		return nil, err
	}
	for _, q := range []string{exceptionDims, ruleDims} {
		if _, err := tx.Exec(ctx, q, string(rows)); err != nil {
			return nil, err
		}
	}
	return db.recordRuleset(ctx, tx)
}

// recordRuleset writes the running ruleset's version, change note and rules
// once per version and process; the returned func marks it written once the
// transaction committed.
func (db *DB) recordRuleset(ctx context.Context, tx pgx.Tx) (func(), error) {
	if db.rules == nil {
		return nil, nil
	}
	rs := db.rules()
	if rs == nil {
		return nil, nil
	}
	db.mu.Lock()
	done := db.rulesets[rs.Version]
	db.mu.Unlock()
	if done {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO dim_ruleset (ruleset_version, change_note, file_hash, first_loaded_at)
		VALUES ($1, $2, $3, now()) ON CONFLICT (ruleset_version) DO UPDATE SET change_note = EXCLUDED.change_note, file_hash = EXCLUDED.file_hash`,
		rs.Version, rs.ChangeNote, rs.Hash); err != nil {
		return nil, err
	}
	for _, r := range rs.Rules {
		steps, _ := json.Marshal(r.Verify)
		if _, err := tx.Exec(ctx, `INSERT INTO dim_rule AS d (rule, description, route, sla_hours, verification_steps, contingency, ruleset_version, first_seen)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now())
			ON CONFLICT (rule) DO UPDATE SET description = EXCLUDED.description, route = EXCLUDED.route,
				sla_hours = EXCLUDED.sla_hours, verification_steps = EXCLUDED.verification_steps,
				contingency = EXCLUDED.contingency, ruleset_version = EXCLUDED.ruleset_version`,
			r.ID, r.Description, r.Route, r.SLA.Hours(), string(steps), r.Contingency, rs.Version); err != nil {
			return nil, err
		}
	}
	return func() {
		db.mu.Lock()
		db.rulesets[rs.Version] = true
		db.mu.Unlock()
	}, nil
}

const upsertStock = `
INSERT INTO stock_changes (sku, location, category, seq, at, out_of_stock, on_hand)
SELECT sku, location, nullif(category, ''), seq, at, out_of_stock, on_hand
FROM jsonb_to_recordset($1::jsonb) AS x(sku text, location text, category text, seq int, at timestamptz,
	out_of_stock bool, on_hand float8)
ORDER BY sku, location, seq
ON CONFLICT (sku, location, seq) DO NOTHING`

func (db *DB) writeStock(ctx context.Context, tx pgx.Tx, rows json.RawMessage) (func(), error) {
	for _, q := range []string{upsertStock, stockDims} {
		if _, err := tx.Exec(ctx, q, string(rows)); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

const upsertCounts = `
WITH x AS (SELECT DISTINCT ON (sku, location, counted_at) * FROM jsonb_to_recordset($1::jsonb) AS x(sku text,
	location text, category text, counted_at timestamptz, source text, counted float8, system float8,
	variance float8, unit_cost float8, version int)
	ORDER BY sku, location, counted_at, version DESC)
INSERT INTO counts AS c (sku, location, category, counted_at, source, counted, system, variance, unit_cost, version)
SELECT sku, location, nullif(category, ''), counted_at, source, counted, system, variance, unit_cost, version FROM x
ON CONFLICT (sku, location, counted_at) DO UPDATE SET category = EXCLUDED.category, source = EXCLUDED.source,
	counted = EXCLUDED.counted, system = EXCLUDED.system, variance = EXCLUDED.variance,
	unit_cost = EXCLUDED.unit_cost, version = EXCLUDED.version
WHERE c.version < EXCLUDED.version`

func (db *DB) writeCounts(ctx context.Context, tx pgx.Tx, rows json.RawMessage) (func(), error) {
	for _, q := range []string{upsertCounts, countDims} {
		if _, err := tx.Exec(ctx, q, string(rows)); err != nil {
			return nil, err
		}
	}
	return nil, nil
}
