-- The read-only role Power BI connects as (through a login role that is a
-- member of it): SELECT on the facts, dimensions and KPI views, nothing else.
-- Creating it needs CREATEROLE; without it, an administrator creates the
-- role once beforehand and this migration only grants.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {{reader_literal}}) THEN
        BEGIN
            CREATE ROLE {{reader}} NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'skuwatch: cannot create role %: create it once as an administrator (CREATE ROLE % NOLOGIN) or grant the writer CREATEROLE',
                {{reader_literal}}, {{reader_literal}};
        END;
    END IF;
END $$;

GRANT USAGE ON SCHEMA {{schema}} TO {{reader}};
GRANT SELECT ON
    dim_sku, dim_location, dim_ruleset, dim_rule, dim_date,
    exceptions, exception_changes, stock_changes, counts, accuracy_tolerance,
    kpi_clock, kpi_stockout_daily, kpi_count_accuracy, kpi_inventory_accuracy_weekly,
    kpi_resolution_time, kpi_sla_adherence, kpi_open_by_age, kpi_financial_impact
TO {{reader}};
