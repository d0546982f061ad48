package rules

// Env is what a rule expression sees. The evaluator passes it by pointer: it
// is a few hundred bytes, and boxing a copy per run cost more than the
// pointer indirection. It holds only plain values.
type Env struct {
	Event    EventEnv           `expr:"event"`
	State    StateEnv           `expr:"state"`
	Transfer TransferEnv        `expr:"transfer"`
	T        map[string]float64 `expr:"t"` // thresholds for the key's category and the month
	Now      NowEnv             `expr:"now"`
}

// EventEnv is the event being applied. On a timer evaluation Type is "timer"
// and the other fields are empty.
type EventEnv struct {
	Type     string  `expr:"type"`
	Source   string  `expr:"source"`
	SKU      string  `expr:"sku"`
	Location string  `expr:"location"`
	Category string  `expr:"category"`
	Qty      float64 `expr:"qty"`
	OnHand   float64 `expr:"on_hand"`
	UnitCost float64 `expr:"unit_cost"`
	// Late is true for an event that happened before the key's last physical
	// count: it is recorded but does not move the ledger.
	Late bool `expr:"late"`
}

// StateEnv is the SKU-location's ledger after the event was applied.
type StateEnv struct {
	OnHand       float64 `expr:"on_hand"`
	OnHandBefore float64 `expr:"on_hand_before"`
	UnitCost     float64 `expr:"unit_cost"`
	Category     string  `expr:"category"`
	// Baselined is true once a count or snapshot gave the ledger an absolute
	// level; before that on_hand is only the sum of movements since start.
	Baselined bool `expr:"baselined"`
	// Variance is what the last physical count corrected: counted minus the
	// ledger before it (0 for the count that opened an unbaselined ledger).
	// Events that arrive after the count but happened before it move it:
	// they show what the ledger before the count really was. RelVariance
	// divides its size by max(|count_ledger_before|, 1).
	Variance          float64 `expr:"variance"`
	AbsVariance       float64 `expr:"abs_variance"`
	RelVariance       float64 `expr:"rel_variance"`
	Counted           float64 `expr:"counted"`
	CountLedgerBefore float64 `expr:"count_ledger_before"`
	HasCount          bool    `expr:"has_count"`
	// HoursSinceCount is -1 when the key was never counted.
	HoursSinceCount float64 `expr:"hours_since_count"`
	// DaysSinceCount counts from the last physical count, or from the first
	// event of a key that has never been counted.
	DaysSinceCount float64 `expr:"days_since_count"`
	DaysSinceSale  float64 `expr:"days_since_sale"` // -1 if it never sold
	// Demand: units sold so far today (UTC day), the expected units for a
	// whole day like today (the larger of the weekday's and the overall
	// exponentially weighted means, zero-sale days included), the standard
	// deviation of daily units (at least the Poisson √expected), and how many
	// completed days the statistics cover.
	TodayUnits    float64 `expr:"today_units"`
	ExpectedDaily float64 `expr:"expected_daily"`
	DailySD       float64 `expr:"daily_sd"`
	HistoryDays   float64 `expr:"history_days"`
	// Stock in transit to this key, and how many transfers.
	InTransitQty   float64 `expr:"in_transit_qty"`
	InTransitCount float64 `expr:"in_transit_count"`
	// SnapshotDiff is the last source-reported level minus the ledger then.
	SnapshotDiff float64 `expr:"snapshot_diff"`
	// HoursNegative is how long (event time) the ledger has been below zero,
	// 0 while it is not.
	HoursNegative float64 `expr:"hours_negative"`
}

// TransferEnv describes transfers into this key. Matched is true when the
// event is a receipt (or a late shipment notice) that joined a known
// transfer; ExpectedQty, ReceivedQty and Diff (received − expected) are then
// that transfer's. The Oldest fields describe the transfer that has been in
// transit longest (OldestAgeHours is -1 when nothing is in transit).
type TransferEnv struct {
	Matched        bool    `expr:"matched"`
	ID             string  `expr:"id"`
	ExpectedQty    float64 `expr:"expected_qty"`
	ReceivedQty    float64 `expr:"received_qty"`
	Diff           float64 `expr:"diff"`
	From           string  `expr:"from"`
	OldestID       string  `expr:"oldest_id"`
	OldestQty      float64 `expr:"oldest_qty"`
	OldestFrom     string  `expr:"oldest_from"`
	OldestAgeHours float64 `expr:"oldest_age_hours"`
}

// NowEnv is the evaluation clock: event time in replay, wall time live.
type NowEnv struct {
	Hour    float64 `expr:"hour"`    // 0–23, UTC
	Weekday float64 `expr:"weekday"` // 0 Sunday … 6 Saturday
	Month   float64 `expr:"month"`   // 1–12
}
