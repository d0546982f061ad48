-- KPI views a Power BI report can use as they are (docs/powerbi.md has the
-- formulas). Days and weeks are UTC whatever the session's time zone; "now"
-- is kpi_clock.data_through, the newest event time the engine has written,
-- so a replayed history reads the same as a live feed.

CREATE FUNCTION utc_day(t timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (t AT TIME ZONE 'UTC')::date;

CREATE FUNCTION utc_week(t timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_trunc('week', t AT TIME ZONE 'UTC')::date;

CREATE VIEW kpi_clock AS
SELECT greatest((SELECT max(at) FROM stock_changes),
                (SELECT max(event_time) FROM exceptions),
                (SELECT max(counted_at) FROM counts)) AS data_through;

-- A date dimension over the data (Power BI's time intelligence wants one).
CREATE VIEW dim_date AS
SELECT d::date AS date,
       date_trunc('week', d)::date AS week,
       date_trunc('month', d)::date AS month,
       extract(isodow FROM d)::int AS iso_weekday,
       extract(year FROM d)::int AS year
FROM generate_series(
         least((SELECT utc_day(min(at)) FROM stock_changes),
               (SELECT utc_day(min(detected_at)) FROM exceptions),
               (SELECT utc_day(min(counted_at)) FROM counts)),
         (SELECT utc_day(data_through) FROM kpi_clock),
         interval '1 day') AS d;

-- Stockout rate by day, location and category: SKU-location-days with stock
-- <= 0 at any time of the day over all SKU-location-days whose ledger was
-- open (from its first level through kpi_clock).
CREATE VIEW kpi_stockout_daily AS
WITH clock AS (SELECT utc_day(data_through) AS last_day FROM kpi_clock),
keys AS (
    SELECT sku, location, coalesce(max(category), '') AS category, utc_day(min(at)) AS first_day
    FROM stock_changes GROUP BY sku, location),
opened AS (
    SELECT location, category, first_day, count(*) AS n FROM keys GROUP BY 1, 2, 3),
grid AS (
    SELECT d::date AS day, g.location, g.category
    FROM (SELECT DISTINCT location, category FROM keys) g, clock,
         generate_series((SELECT min(first_day) FROM keys), clock.last_day, interval '1 day') AS d),
tracked AS (
    SELECT grid.day, grid.location, grid.category,
           sum(coalesce(o.n, 0)) OVER (PARTITION BY grid.location, grid.category ORDER BY grid.day) AS sku_location_days
    FROM grid LEFT JOIN opened o
        ON o.location = grid.location AND o.category = grid.category AND o.first_day = grid.day),
spans AS (
    SELECT sku, location, at, out_of_stock,
           lead(at) OVER (PARTITION BY sku, location ORDER BY seq) AS until
    FROM stock_changes),
out_days AS (
    SELECT DISTINCT s.sku, s.location, k.category, d::date AS day
    FROM spans s JOIN keys k USING (sku, location), clock,
         generate_series(utc_day(s.at), coalesce(utc_day(s.until - interval '1 microsecond'), clock.last_day), interval '1 day') AS d
    WHERE s.out_of_stock),
stockouts AS (
    SELECT day, location, category, count(*) AS n FROM out_days GROUP BY 1, 2, 3)
SELECT t.day, t.location, nullif(t.category, '') AS category,
       t.sku_location_days::bigint AS sku_location_days,
       coalesce(so.n, 0)::bigint AS stockout_days,
       coalesce(so.n, 0)::double precision / t.sku_location_days AS stockout_rate
FROM tracked t LEFT JOIN stockouts so USING (day, location, category)
WHERE t.sku_location_days > 0;

-- Every count, judged against the stated tolerance (accuracy_tolerance).
CREATE VIEW kpi_count_accuracy AS
SELECT c.sku, c.location, c.category, c.counted_at, utc_week(c.counted_at) AS week,
       c.counted, c.system, c.variance,
       abs(c.variance) <= greatest(t.abs_units, t.rel * abs(c.system)) AS accurate,
       abs(c.variance) * c.unit_cost AS abs_variance_value
FROM counts c
CROSS JOIN LATERAL (
    SELECT a.abs_units, a.rel FROM accuracy_tolerance a
    WHERE a.category = c.category OR a.category = '*'
    ORDER BY a.category = '*' LIMIT 1) t;

-- Inventory record accuracy by week and location: accurate counts over counts.
CREATE VIEW kpi_inventory_accuracy_weekly AS
SELECT week, location,
       count(*) AS records_counted,
       count(*) FILTER (WHERE accurate) AS records_accurate,
       (count(*) FILTER (WHERE accurate))::double precision / count(*) AS accuracy,
       sum(abs(variance)) AS abs_variance_units,
       sum(abs_variance_value) AS abs_variance_value
FROM kpi_count_accuracy
GROUP BY week, location;

-- Exception resolution time (hours from detection to resolution) by the
-- week it was resolved, rule and owner.
CREATE VIEW kpi_resolution_time AS
SELECT utc_week(resolved_at) AS week, rule, owner,
       count(*) AS resolved,
       avg(resolution_hours) AS mean_hours,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_hours) AS p50_hours,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_hours) AS p90_hours
FROM exceptions
WHERE resolved_at IS NOT NULL
GROUP BY 1, 2, 3;

-- SLA adherence by the week the SLA falls due, rule and owner: of the
-- exceptions that are resolved or past due at kpi_clock, the share resolved
-- by their due time.
CREATE VIEW kpi_sla_adherence AS
SELECT utc_week(e.sla_due_at) AS week, e.rule, e.owner,
       count(*) AS due,
       count(*) FILTER (WHERE e.resolved_at <= e.sla_due_at) AS met,
       count(*) FILTER (WHERE e.resolved_at > e.sla_due_at) AS resolved_late,
       count(*) FILTER (WHERE e.resolved_at IS NULL) AS open_past_due,
       (count(*) FILTER (WHERE e.resolved_at <= e.sla_due_at))::double precision / count(*) AS adherence
FROM exceptions e, kpi_clock k
WHERE e.resolved_at IS NOT NULL OR e.sla_due_at <= k.data_through
GROUP BY 1, 2, 3;

-- Open exceptions by age at kpi_clock.
CREATE VIEW kpi_open_by_age AS
WITH open AS (
    SELECT e.*, extract(epoch FROM k.data_through - e.detected_at) / 3600 AS age_hours
    FROM exceptions e, kpi_clock k
    WHERE e.status <> 'resolved')
SELECT rule, location, owner, severity,
       CASE WHEN age_hours < 4 THEN '0-4h' WHEN age_hours < 24 THEN '4-24h'
            WHEN age_hours < 72 THEN '1-3d' WHEN age_hours < 168 THEN '3-7d' ELSE '7d+' END AS age_bucket,
       CASE WHEN age_hours < 4 THEN 1 WHEN age_hours < 24 THEN 2
            WHEN age_hours < 72 THEN 3 WHEN age_hours < 168 THEN 4 ELSE 5 END AS age_bucket_order,
       count(*) AS open_exceptions,
       count(*) FILTER (WHERE sla_due_at < (SELECT data_through FROM kpi_clock)) AS past_sla,
       sum(financial_impact) AS financial_impact,
       max(age_hours) AS oldest_hours
FROM open
GROUP BY 1, 2, 3, 4, 5, 6;

-- Financial impact by the week detected, rule and location.
CREATE VIEW kpi_financial_impact AS
SELECT utc_week(detected_at) AS week, rule, location,
       count(*) AS exceptions,
       sum(financial_impact) AS financial_impact,
       sum(financial_impact) FILTER (WHERE status = 'resolved') AS resolved_impact,
       sum(financial_impact) FILTER (WHERE status <> 'resolved') AS open_impact
FROM exceptions
GROUP BY 1, 2, 3;
