package engine

import (
	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/state"
)

// applied is what applying one event did, for the rule environment.
type applied struct {
	onHandBefore float64
	baselined    bool // the ledger had an absolute level before the event
	late         bool
	matched      bool // the event joined a known transfer
	// countCorrected: a late movement changed the last count's variance.
	countCorrected bool
	transfer       state.Transfer
}

// applyEvent applies one validated event to the ledger row (DESIGN.md,
// ledger semantics). It is deterministic: the same entry and event give the
// same result, whatever the wall clock says.
func applyEvent(e *state.Entry, ev *sources.Event, isNew bool) applied {
	t := ev.EventTime.UnixNano()
	if isNew {
		e.FirstSeen = t
		rollDemand(&e.Demand, dayOf(t), false, true)
	}
	if ev.Category != "" {
		e.Category = ev.Category
	}
	if ev.HasUnitCost {
		e.UnitCost = ev.UnitCost
	}
	if ev.Type != sources.TypeTransferExpected {
		noteSource(e, ev.Source, t)
		e.LastEvent = max(e.LastEvent, t)
	}
	a := applied{onHandBefore: e.OnHand, baselined: e.Baselined}
	// An event from before the last physical count is already inside it.
	a.late = e.HasCount && t < e.LastCount
	move := func(delta float64) {
		if !a.late {
			e.OnHand += delta
			noteMovement(e, t, delta)
			return
		}
		if t >= e.PrevCount {
			// The count saw this movement, so the ledger before the count
			// should have had it too: the count corrected less (or more).
			e.CountLedgerBefore += delta
			e.CountVariance -= delta
			a.countCorrected = true
		}
	}
	switch ev.Type {
	case sources.TypeSale:
		if day := dayOf(t); day >= e.Demand.Day {
			rollDemand(&e.Demand, day, e.Baselined && e.OnHand <= 0, false)
			e.Demand.Today += ev.Qty
		}
		move(-ev.Qty)
		if e.Baselined && e.OnHand <= 0 {
			e.Demand.Censored = true
		}
		e.LastSale = max(e.LastSale, t)
	case sources.TypeReturn, sources.TypeReceipt:
		move(ev.Qty)
	case sources.TypeAdjustment:
		move(ev.Qty)
	case sources.TypeTransferOut:
		move(-ev.Qty)
	case sources.TypeTransferIn:
		move(ev.Qty)
		a.matched, a.transfer = receive(e, ev, t)
	case sources.TypeTransferExpected:
		a.matched, a.transfer = expect(e, ev, t)
	case sources.TypeCount:
		if !a.late {
			// Movements that happened after the count but arrived before it
			// are not in what was counted: the ledger at the count is without
			// them, and they stay on top of the counted level.
			later := movedAfter(e, t, true)
			atCount := e.OnHand - later
			e.CountLedgerBefore, e.CountVariance = ev.OnHand, 0
			if e.Baselined {
				e.CountLedgerBefore, e.CountVariance = atCount, ev.OnHand-atCount
			}
			e.OnHand, e.Baselined = ev.OnHand+later, true
			e.PrevCount, e.HasCount, e.LastCount, e.LastCountQty = e.LastCount, true, t, ev.OnHand
		}
	case sources.TypeSnapshot:
		if t >= e.SnapshotAt {
			later := movedAfter(e, t, false)
			e.SnapshotSource, e.SnapshotOnHand, e.SnapshotAt = ev.Source, ev.OnHand, t
			e.SnapshotDiff = ev.OnHand - (e.OnHand - later)
			if !e.Baselined {
				// The first level a source reports opens the ledger; after
				// that, snapshots are compared, never applied.
				e.OnHand, e.Baselined, e.SnapshotDiff = ev.OnHand+later, true, 0
			}
		}
	}
	if e.Baselined && e.OnHand < 0 {
		if e.NegativeSince == 0 {
			e.NegativeSince = max(t, 1)
		}
	} else {
		e.NegativeSince = 0
	}
	return a
}

// noteMovement remembers an applied movement for counts that arrive late.
func noteMovement(e *state.Entry, t int64, delta float64) {
	e.Recent = append(e.Recent, state.Movement{At: t, Delta: delta})
	if len(e.Recent) > state.MaxRecent {
		e.Recent = e.Recent[len(e.Recent)-state.MaxRecent:]
	}
}

// movedAfter sums the remembered movements that happened after t; with
// forget, the ones at or before t are dropped (a count now covers them).
func movedAfter(e *state.Entry, t int64, forget bool) float64 {
	sum := 0.0
	kept := e.Recent[:0]
	for _, m := range e.Recent {
		if m.At > t {
			sum += m.Delta
			kept = append(kept, m)
		} else if !forget {
			kept = append(kept, m)
		}
	}
	e.Recent = kept
	return sum
}

func noteSource(e *state.Entry, source string, t int64) {
	for i := range e.Sources {
		if e.Sources[i].Source == source {
			e.Sources[i].Last = max(e.Sources[i].Last, t)
			return
		}
	}
	e.Sources = append(e.Sources, state.SourceSeen{Source: source, Last: t})
}

// receive books a transfer_in against the transfer it belongs to. A second
// leg of an already received transfer adds to it; a receipt with no known
// shipment waits in Unmatched for the shipment notice.
func receive(e *state.Entry, ev *sources.Event, t int64) (bool, state.Transfer) {
	for i, tr := range e.InTransit {
		if tr.ID == ev.TransferID {
			tr.Received += ev.Qty
			e.InTransit = append(e.InTransit[:i], e.InTransit[i+1:]...)
			pushReceived(e, tr)
			return true, tr
		}
	}
	for i := range e.Received {
		if e.Received[i].ID == ev.TransferID {
			e.Received[i].Received += ev.Qty
			return true, e.Received[i]
		}
	}
	for i := range e.Unmatched {
		if e.Unmatched[i].ID == ev.TransferID {
			e.Unmatched[i].Received += ev.Qty
			return false, e.Unmatched[i]
		}
	}
	u := state.Transfer{ID: ev.TransferID, Peer: ev.FromLocation, Received: ev.Qty, At: t}
	e.Unmatched = append(e.Unmatched, u)
	if len(e.Unmatched) > state.MaxUnmatched {
		e.Unmatched = e.Unmatched[1:]
	}
	return false, u
}

// expect books a shipment notice: stock is now in transit to this key, or,
// if its receipt came first, the two are joined.
func expect(e *state.Entry, ev *sources.Event, t int64) (bool, state.Transfer) {
	for i, u := range e.Unmatched {
		if u.ID == ev.TransferID {
			u.Qty, u.Peer, u.At = ev.Qty, ev.FromLocation, t
			e.Unmatched = append(e.Unmatched[:i], e.Unmatched[i+1:]...)
			pushReceived(e, u)
			return true, u
		}
	}
	for _, tr := range e.InTransit {
		if tr.ID == ev.TransferID {
			return false, tr // a second notice for the same transfer changes nothing
		}
	}
	tr := state.Transfer{ID: ev.TransferID, Peer: ev.FromLocation, Qty: ev.Qty, At: t}
	e.InTransit = append(e.InTransit, tr)
	return false, tr
}

func pushReceived(e *state.Entry, tr state.Transfer) {
	e.Received = append(e.Received, tr)
	if len(e.Received) > state.MaxReceived {
		e.Received = e.Received[1:]
	}
}
