package sources

import "time"

// Event types of the canonical contract.
const (
	TypeSale        = "sale"
	TypeReturn      = "return"
	TypeReceipt     = "receipt"
	TypeAdjustment  = "adjustment"
	TypeCount       = "count"
	TypeSnapshot    = "snapshot"
	TypeTransferOut = "transfer_out"
	TypeTransferIn  = "transfer_in"
	// TypeTransferExpected is internal: intake derives it from a transfer_out
	// to tell the destination key that stock is in transit to it. Sources may
	// not send it.
	TypeTransferExpected = "transfer_expected"
)

// Event is one canonical inventory event. The zero value is not valid; events
// come from Decode and are checked by the engine's intake.
//
// An Event is a plain value: safe to copy and to read from any goroutine.
type Event struct {
	EventID      string
	Source       string
	Type         string
	SKU          string
	Location     string
	Qty          float64
	HasQty       bool
	OnHand       float64
	HasOnHand    bool
	TransferID   string
	ToLocation   string
	FromLocation string
	UnitCost     float64
	HasUnitCost  bool
	Category     string
	EventTime    time.Time
}

// StateKey is the ledger key of the event: sku and location joined by a NUL
// byte, which intake forbids inside either.
func (e *Event) StateKey() string { return StateKey(e.SKU, e.Location) }

// StateKey joins sku and location into the ledger key.
func StateKey(sku, location string) string { return sku + "\x00" + location }
