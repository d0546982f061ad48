package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier is what Snapshot needs of a connection or pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Connect opens one connection to the tables of schema, for reading: it
// applies no migrations, so a read-only role (the reader role) will do.
func Connect(ctx context.Context, dsn, schema string) (*pgx.Conn, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["application_name"] = "skuwatch-kpi"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return c, nil
}

// Snapshot is the KPI values of one period [Since, Until), from the KPI
// views (docs/powerbi.md has the formulas). Rates are fractions; a rate with
// nothing to measure is nil.
type Snapshot struct {
	Since       time.Time  `json:"since"`
	Until       time.Time  `json:"until"`
	DataThrough *time.Time `json:"data_through"`

	StockoutRate    *float64 `json:"stockout_rate"`
	SKULocationDays int64    `json:"sku_location_days"`
	StockoutDays    int64    `json:"stockout_days"`

	InventoryAccuracy *float64 `json:"inventory_accuracy"`
	CountsTaken       int64    `json:"counts"`
	CountsAccurate    int64    `json:"counts_accurate"`

	Detected        int64    `json:"exceptions_detected"`
	Resolved        int64    `json:"exceptions_resolved"`
	MeanResolutionH *float64 `json:"resolution_hours_mean"`
	P50ResolutionH  *float64 `json:"resolution_hours_p50"`
	P90ResolutionH  *float64 `json:"resolution_hours_p90"`

	SLADue       int64    `json:"sla_due"`
	SLAMet       int64    `json:"sla_met"`
	SLAAdherence *float64 `json:"sla_adherence"`

	OpenAtUntil     int64   `json:"open_at_until"`
	FinancialImpact float64 `json:"financial_impact"`
}

// LatestDay is the UTC day after the newest data (the default end of a
// period), or the zero time when the tables are empty.
func LatestDay(ctx context.Context, q Querier) (time.Time, error) {
	var t *time.Time
	if err := q.QueryRow(ctx, "SELECT data_through FROM kpi_clock").Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("postgres: kpi clock: %w", err)
	}
	if t == nil {
		return time.Time{}, nil
	}
	return t.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour), nil
}

// TakeSnapshot computes the KPIs of [since, until).
func TakeSnapshot(ctx context.Context, q Querier, since, until time.Time) (Snapshot, error) {
	s := Snapshot{Since: since.UTC(), Until: until.UTC()}
	period := []any{s.Since, s.Until}
	steps := []struct {
		what string
		sql  string
		args []any
		dst  []any
	}{
		{"clock", `SELECT data_through FROM kpi_clock`, nil, []any{&s.DataThrough}},
		{"stockout rate", `SELECT coalesce(sum(sku_location_days), 0)::bigint, coalesce(sum(stockout_days), 0)::bigint
			FROM kpi_stockout_daily WHERE day >= utc_day($1) AND day < utc_day($2)`, period, []any{&s.SKULocationDays, &s.StockoutDays}},
		{"inventory accuracy", `SELECT count(*), count(*) FILTER (WHERE accurate)
			FROM kpi_count_accuracy WHERE counted_at >= $1 AND counted_at < $2`, period, []any{&s.CountsTaken, &s.CountsAccurate}},
		{"detected", `SELECT count(*), coalesce(sum(financial_impact), 0)::float8
			FROM exceptions WHERE detected_at >= $1 AND detected_at < $2`, period, []any{&s.Detected, &s.FinancialImpact}},
		{"resolution time", `SELECT count(*), avg(resolution_hours),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_hours),
			percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_hours)
			FROM exceptions WHERE resolved_at >= $1 AND resolved_at < $2`, period,
			[]any{&s.Resolved, &s.MeanResolutionH, &s.P50ResolutionH, &s.P90ResolutionH}},
		{"SLA adherence", `SELECT count(*), count(*) FILTER (WHERE e.resolved_at <= e.sla_due_at)
			FROM exceptions e, kpi_clock k
			WHERE e.sla_due_at >= $1 AND e.sla_due_at < $2 AND (e.resolved_at IS NOT NULL OR e.sla_due_at <= k.data_through)`, period, []any{&s.SLADue, &s.SLAMet}},
		{"open", `SELECT count(*) FROM exceptions
			WHERE detected_at < $1 AND (resolved_at IS NULL OR resolved_at >= $1)`, []any{s.Until}, []any{&s.OpenAtUntil}},
	}
	for _, st := range steps {
		if err := q.QueryRow(ctx, st.sql, st.args...).Scan(st.dst...); err != nil {
			return s, fmt.Errorf("postgres: kpi %s: %w", st.what, err)
		}
	}
	s.StockoutRate = ratio(s.StockoutDays, s.SKULocationDays)
	s.InventoryAccuracy = ratio(s.CountsAccurate, s.CountsTaken)
	s.SLAAdherence = ratio(s.SLAMet, s.SLADue)
	return s, nil
}

func ratio(a, b int64) *float64 {
	if b == 0 {
		return nil
	}
	r := float64(a) / float64(b)
	return &r
}
