package engine

import (
	"math"
	"time"

	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/state"
)

const triggerTimer = "timer"

// buildEnv is the rules' view of a key at now, after ev (nil on a timer) was
// applied with result a.
func buildEnv(key string, e *state.Entry, ev *sources.Event, a applied, now int64, th map[string]float64) rules.Env {
	env := rules.Env{T: th}
	if ev != nil {
		env.Event = rules.EventEnv{Type: ev.Type, Source: ev.Source, SKU: ev.SKU, Location: ev.Location,
			Category: ev.Category, Qty: ev.Qty, OnHand: ev.OnHand, UnitCost: ev.UnitCost, Late: a.late}
	} else {
		sku, loc := splitKey(key)
		env.Event = rules.EventEnv{Type: triggerTimer, SKU: sku, Location: loc, Category: e.Category}
		a.onHandBefore = e.OnHand
	}
	s := &env.State
	s.OnHand, s.OnHandBefore, s.UnitCost, s.Category = e.OnHand, a.onHandBefore, e.UnitCost, e.Category
	s.Baselined = e.Baselined
	s.Variance = e.CountVariance
	s.AbsVariance = math.Abs(e.CountVariance)
	s.RelVariance = s.AbsVariance / math.Max(math.Abs(e.CountLedgerBefore), 1)
	s.Counted, s.CountLedgerBefore = e.LastCountQty, e.CountLedgerBefore
	s.HasCount = e.HasCount
	s.HoursSinceCount = -1
	if e.HasCount {
		s.HoursSinceCount = hours(now - e.LastCount)
	}
	since := e.FirstSeen
	if e.HasCount {
		since = e.LastCount
	}
	s.DaysSinceCount = days(now - since)
	s.DaysSinceSale = -1
	if e.LastSale != 0 {
		s.DaysSinceSale = days(now - e.LastSale)
	}
	day := dayOf(now)
	if e.Demand.Day == day {
		s.TodayUnits = e.Demand.Today
	}
	s.ExpectedDaily, s.DailySD = expectation(&e.Demand, day)
	s.HistoryDays = float64(e.Demand.Days)
	s.SnapshotDiff = e.SnapshotDiff
	if e.NegativeSince != 0 {
		s.HoursNegative = math.Max(hours(now-e.NegativeSince), 0)
	}

	tr := &env.Transfer
	tr.OldestAgeHours = -1
	for _, it := range e.InTransit {
		s.InTransitQty += it.Qty
		s.InTransitCount++
		if age := hours(now - it.At); age > tr.OldestAgeHours {
			tr.OldestAgeHours, tr.OldestID, tr.OldestQty, tr.OldestFrom = age, it.ID, it.Qty, it.Peer
		}
	}
	if a.matched {
		tr.Matched, tr.ID, tr.From = true, a.transfer.ID, a.transfer.Peer
		tr.ExpectedQty, tr.ReceivedQty = a.transfer.Qty, a.transfer.Received
		tr.Diff = a.transfer.Received - a.transfer.Qty
	}

	tm := time.Unix(0, now).UTC()
	env.Now = rules.NowEnv{Hour: float64(tm.Hour()), Weekday: float64(tm.Weekday()), Month: float64(tm.Month())}
	return env
}

func days(ns int64) float64  { return float64(ns) / float64(nsPerDay) }
func hours(ns int64) float64 { return float64(ns) / float64(time.Hour) }

func splitKey(key string) (sku, location string) {
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}
