package state

import "time"

// Exception statuses of the contract.
const (
	StatusOpen            = "open"
	StatusAcknowledged    = "acknowledged"
	StatusPendingApproval = "pending_approval"
	StatusResolved        = "resolved"
)

// Exception is one episode of one rule on one SKU-location, as the sinks see
// it (DESIGN.md, Exception contract). It is a plain value; the engine makes a
// new version for every change and never mutates one that has been written.
type Exception struct {
	ExceptionID     string         `json:"exception_id"`
	Rule            string         `json:"rule"`
	SKU             string         `json:"sku"`
	Location        string         `json:"location"`
	Category        string         `json:"category,omitempty"`
	Severity        int            `json:"severity"`
	Score           float64        `json:"score"`
	Status          string         `json:"status"`
	Change          string         `json:"change"` // opened, updated or resolved: what this version did
	DetectedAt      time.Time      `json:"detected_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	ResolvedAt      *time.Time     `json:"resolved_at"`
	EventTime       time.Time      `json:"event_time"`
	RulesetVersion  string         `json:"ruleset_version"`
	Route           string         `json:"route"`
	Owner           string         `json:"owner"`
	SLADueAt        time.Time      `json:"sla_due_at"`
	Evidence        map[string]any `json:"evidence"`
	FinancialImpact float64        `json:"financial_impact"`
	Verification    []string       `json:"verification_steps,omitempty"`
	Contingency     string         `json:"contingency,omitempty"`
	TriggerSource   string         `json:"trigger_source"`
	TriggerEventID  string         `json:"trigger_event_id"`
	ResolutionCause string         `json:"resolution_cause,omitempty"`
	Version         int            `json:"version"`

	// Encoded is this version's JSON when the writer already has it; the
	// ledger row stores it as is instead of encoding again. Whoever changes
	// a field must reset it.
	Encoded []byte `json:"-"`
}

// DeadLetter is one rejected input, as the dead-letter sinks see it. Raw holds
// the original bytes when they are valid UTF-8, RawBase64 otherwise, so the
// input can be fixed and replayed.
type DeadLetter struct {
	Reason    string `json:"reason"`
	Field     string `json:"field,omitempty"`
	Input     string `json:"input"`
	Offset    int64  `json:"offset"`
	Raw       string `json:"raw,omitempty"`
	RawBase64 string `json:"raw_base64,omitempty"`
}

// StockChange is a SKU-location's stock status as it starts and whenever it
// flips between in stock (on hand > 0) and out of stock (on hand <= 0): the
// intervals a stockout-rate KPI needs, in rows that are rare. Seq orders one
// key's changes (At is the event time of the event that caused it, never
// earlier than the key's previous change).
type StockChange struct {
	SKU        string    `json:"sku"`
	Location   string    `json:"location"`
	Category   string    `json:"category,omitempty"`
	Seq        int       `json:"seq"`
	At         time.Time `json:"at"`
	OutOfStock bool      `json:"out_of_stock"`
	OnHand     float64   `json:"on_hand"`
}

// CountRecord is one physical count of a ledger that had a level before it:
// what was counted, what the ledger held (System) and the difference. A
// movement from before the count that arrives after it corrects System and
// Variance in a new version.
type CountRecord struct {
	SKU       string    `json:"sku"`
	Location  string    `json:"location"`
	Category  string    `json:"category,omitempty"`
	CountedAt time.Time `json:"counted_at"`
	Source    string    `json:"source"`
	Counted   float64   `json:"counted"`
	System    float64   `json:"system"`
	Variance  float64   `json:"variance"`
	UnitCost  float64   `json:"unit_cost"`
	Version   int       `json:"version"`
}
