-- skuwatch tables: one star schema for Power BI. Every time is UTC
-- timestamptz; the engine's day is the UTC day.

-- Dimensions --------------------------------------------------------------

CREATE TABLE dim_sku (
    sku        text PRIMARY KEY,
    category   text,
    unit_cost  numeric(14, 4),
    first_seen timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE dim_location (
    location   text PRIMARY KEY,
    first_seen timestamptz NOT NULL
);

CREATE TABLE dim_ruleset (
    ruleset_version text PRIMARY KEY,
    change_note     text NOT NULL,
    file_hash       text NOT NULL,
    first_loaded_at timestamptz NOT NULL
);

CREATE TABLE dim_rule (
    rule               text PRIMARY KEY,
    description        text,
    route              text,
    sla_hours          double precision,
    verification_steps jsonb,
    contingency        text,
    ruleset_version    text,           -- the latest ruleset that defined it
    first_seen         timestamptz NOT NULL
);

-- Facts -------------------------------------------------------------------

-- One current row per exception (grain: exception_id), the latest version.
CREATE TABLE exceptions (
    exception_id       text PRIMARY KEY,
    rule               text NOT NULL,
    sku                text NOT NULL,
    location           text NOT NULL,
    category           text,
    severity           smallint NOT NULL CHECK (severity BETWEEN 1 AND 5),
    score              double precision NOT NULL CHECK (score BETWEEN 0 AND 100),
    status             text NOT NULL CHECK (status IN ('open', 'acknowledged', 'pending_approval', 'resolved')),
    last_change        text NOT NULL,
    detected_at        timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    resolved_at        timestamptz,
    event_time         timestamptz NOT NULL,
    ruleset_version    text NOT NULL,
    route              text NOT NULL,
    owner              text NOT NULL,
    sla_due_at         timestamptz NOT NULL,
    evidence           jsonb NOT NULL,
    financial_impact   numeric(14, 2) NOT NULL,
    verification_steps jsonb,
    contingency        text,
    trigger_source     text,
    trigger_event_id   text,
    resolution_cause   text,
    -- Why it took longer than its SLA: resolved_after_sla or open_past_sla
    -- when the sink wrote it; NULL within SLA.
    delay_cause        text,
    resolution_hours   double precision GENERATED ALWAYS AS (extract(epoch FROM resolved_at - detected_at) / 3600) STORED,
    sla_met            boolean GENERATED ALWAYS AS (resolved_at <= sla_due_at) STORED,
    version            integer NOT NULL CHECK (version > 0),
    written_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exceptions_detected_at ON exceptions (detected_at);
CREATE INDEX exceptions_location_detected ON exceptions (location, detected_at);
CREATE INDEX exceptions_rule_detected ON exceptions (rule, detected_at);
CREATE INDEX exceptions_status_detected ON exceptions (status, detected_at);
CREATE INDEX exceptions_resolved_at ON exceptions (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX exceptions_sku ON exceptions (sku);

-- Every lifecycle change, append only (grain: exception_id, version).
CREATE TABLE exception_changes (
    exception_id     text NOT NULL,
    version          integer NOT NULL,
    change           text NOT NULL,
    status           text NOT NULL,
    rule             text NOT NULL,
    sku              text NOT NULL,
    location         text NOT NULL,
    severity         smallint NOT NULL,
    score            double precision NOT NULL,
    owner            text NOT NULL,
    changed_at       timestamptz NOT NULL,
    event_time       timestamptz NOT NULL,
    ruleset_version  text NOT NULL,
    evidence         jsonb NOT NULL,
    financial_impact numeric(14, 2) NOT NULL,
    trigger_source   text,
    trigger_event_id text,
    resolution_cause text,
    PRIMARY KEY (exception_id, version)
);
CREATE INDEX exception_changes_changed_at ON exception_changes (changed_at);

-- A SKU-location's stock status when the ledger opens and at every flip
-- between in stock (on hand > 0) and out of stock (grain: sku, location, seq).
CREATE TABLE stock_changes (
    sku          text NOT NULL,
    location     text NOT NULL,
    category     text,
    seq          integer NOT NULL,
    at           timestamptz NOT NULL,
    out_of_stock boolean NOT NULL,
    on_hand      double precision NOT NULL,
    PRIMARY KEY (sku, location, seq)
);
CREATE INDEX stock_changes_at ON stock_changes (at);

-- Physical counts of ledgers that had a level (grain: sku, location,
-- counted_at); system is what the ledger held at the count.
CREATE TABLE counts (
    sku        text NOT NULL,
    location   text NOT NULL,
    category   text,
    counted_at timestamptz NOT NULL,
    source     text NOT NULL,
    counted    double precision NOT NULL,
    system     double precision NOT NULL,
    variance   double precision NOT NULL,
    unit_cost  double precision NOT NULL,
    version    integer NOT NULL,
    PRIMARY KEY (sku, location, counted_at)
);
CREATE INDEX counts_counted_at ON counts (counted_at);
CREATE INDEX counts_location_counted ON counts (location, counted_at);

-- The tolerance within which a count "matches" the ledger for inventory
-- record accuracy: |variance| <= greatest(abs_units, rel * |system|). One
-- row per category; '*' is every other category. Edit it to state yours.
CREATE TABLE accuracy_tolerance (
    category  text PRIMARY KEY,
    abs_units double precision NOT NULL DEFAULT 0 CHECK (abs_units >= 0),
    rel       double precision NOT NULL DEFAULT 0 CHECK (rel >= 0)
);
INSERT INTO accuracy_tolerance (category, abs_units, rel) VALUES ('*', 0, 0);
