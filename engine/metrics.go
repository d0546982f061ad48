package engine

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's Prometheus metrics, registered on an injected
// registerer. Label values are bounded: outcomes, rule ids, changes, sinks.
// Safe for concurrent use.
type Metrics struct {
	events       *prometheus.CounterVec
	ruleEval     *prometheus.HistogramVec
	ruleErrors   *prometheus.CounterVec
	exceptions   *prometheus.CounterVec
	batchSeconds prometheus.Histogram
	reloadOK     prometheus.Gauge
	reloadTime   prometheus.Gauge
	reloads      *prometheus.CounterVec
	rulesetInfo  *prometheus.GaugeVec
	timersFired  prometheus.Counter
	lag          *prometheus.GaugeVec
	outboxDepth  *prometheus.GaugeVec
	processed    prometheus.Counter
	deadLettered prometheus.Counter
	duplicates   prometheus.Counter
	late         prometheus.Counter
}

// Event outcomes.
const (
	OutcomeProcessed    = "processed"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeDuplicate    = "duplicate"
	OutcomeLate         = "late"
)

// NewMetrics creates and registers the metrics. A nil registerer keeps them
// unregistered (tests, replay).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skuwatch_events_total",
			Help: "Ledger records by outcome: processed (includes duplicate and late), dead_lettered, duplicate (applied once already), late (before the last count)."}, []string{"outcome"}),
		ruleEval: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "skuwatch_rule_eval_duration_seconds",
			Help:    "Time to evaluate one rule's condition, sampled 1 in 64 evaluations.",
			Buckets: []float64{1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 1e-4}}, []string{"rule"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skuwatch_rule_errors_total",
			Help: "Rule evaluations that failed at run time (the rule is treated as not firing)."}, []string{"rule"}),
		exceptions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skuwatch_exceptions_total",
			Help: "Exception changes by rule, change (opened, updated, resolved) and severity (1–5)."}, []string{"rule", "change", "severity"}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "skuwatch_batch_duration_seconds",
			Help: "Time to process and commit one batch.", Buckets: prometheus.ExponentialBuckets(1e-4, 2.5, 10)}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "skuwatch_rules_last_reload_successful",
			Help: "1 if the last rule reload succeeded, 0 if it failed and the previous rules are still running."}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "skuwatch_rules_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful rule load."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skuwatch_rules_reloads_total",
			Help: "Rule reload attempts by result (success, failure)."}, []string{"result"}),
		rulesetInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "skuwatch_ruleset_info",
			Help: "1 for the running ruleset, labelled with its version and file hash."}, []string{"version", "hash"}),
		timersFired: prometheus.NewCounter(prometheus.CounterOpts{Name: "skuwatch_timers_fired_total",
			Help: "Timer evaluations (stale counts, overdue transfers)."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "skuwatch_consumer_lag_records",
			Help: "Records of the ledger topic not yet processed, by partition."}, []string{"partition"}),
		outboxDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "skuwatch_outbox_depth_rows",
			Help: "Outbox rows a sink has not yet delivered, by sink and partition."}, []string{"sink", "partition"}),
	}
	m.processed = m.events.WithLabelValues(OutcomeProcessed)
	m.deadLettered = m.events.WithLabelValues(OutcomeDeadLettered)
	m.duplicates = m.events.WithLabelValues(OutcomeDuplicate)
	m.late = m.events.WithLabelValues(OutcomeLate)
	if reg != nil {
		reg.MustRegister(m.events, m.ruleEval, m.ruleErrors, m.exceptions, m.batchSeconds,
			m.reloadOK, m.reloadTime, m.reloads, m.rulesetInfo, m.timersFired, m.lag, m.outboxDepth)
	}
	return m
}
