package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/state"
)

// DefaultTestTime is when a rule-file test happens unless it says: a
// Wednesday, so weekday patterns are visible.
var DefaultTestTime = time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)

// TestFailure is one rule-file test that did not pass.
type TestFailure struct {
	File string
	Line int
	Name string
	Want []string
	Got  []string
	Err  error
}

func (f TestFailure) String() string {
	if f.Err != nil {
		return fmt.Sprintf("%s:%d: test %q: %v", f.File, f.Line, f.Name, f.Err)
	}
	return fmt.Sprintf("%s:%d: test %q: want open %s, got %s", f.File, f.Line, f.Name, list(f.Want), list(f.Got))
}

func list(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return "[" + strings.Join(ids, " ") + "]"
}

// TestRules runs the tests inside a rule file through the real engine (the
// same apply, evaluate and lifecycle code, on an in-memory store) and returns
// the failures.
func TestRules(rs *rules.Ruleset) []TestFailure {
	fail := func(tc *rules.TestCase, err error) []TestFailure {
		return []TestFailure{{File: rs.File, Line: tc.Line, Name: tc.Name, Err: err}}
	}
	store, err := state.Open("ruletest", state.Options{InMemory: true, CacheBytes: 1 << 20})
	if err != nil {
		return []TestFailure{{File: rs.File, Err: err}}
	}
	defer store.Close()
	p, err := NewProcessor(ProcessorConfig{Store: store, Rules: NewRules(rs, nil), ExpectedEventIDs: 1024})
	if err != nil {
		return []TestFailure{{File: rs.File, Err: err}}
	}
	defer p.Close()
	intake := NewIntake(IntakeConfig{})
	var out []TestFailure
	for i := range rs.Tests {
		tc := &rs.Tests[i]
		got, err := runTest(p, intake, i, tc)
		if err != nil {
			out = append(out, fail(tc, err)...)
			continue
		}
		want := slices.Clone(tc.Expect)
		slices.Sort(want)
		if !slices.Equal(want, got) {
			out = append(out, TestFailure{File: rs.File, Line: tc.Line, Name: tc.Name, Want: want, Got: got})
		}
	}
	return out
}

func runTest(p *Processor, intake *Intake, i int, tc *rules.TestCase) ([]string, error) {
	at := DefaultTestTime
	if tc.At != "" {
		at, _ = time.Parse(time.RFC3339, tc.At)
	}
	sku, loc := fmt.Sprintf("TEST-SKU-%d", i), "TEST-LOC"
	key := sources.StateKey(sku, loc)
	e := testEntry(&tc.State, at)
	p.cache.put(key, e)
	now := at.UnixNano()
	if tc.Event != nil {
		ev := testEvent(tc.Event, sku, loc, i, at)
		if err := intake.Validate(&ev, at); err != nil && ev.Type != sources.TypeTransferExpected {
			return nil, fmt.Errorf("event is not valid: %w", err)
		}
		if err := p.Apply(&ev, now); err != nil {
			return nil, err
		}
	}
	if tc.TimerAfterHours > 0 {
		due := now + int64(tc.TimerAfterHours*float64(time.Hour))
		if err := p.evaluate(key, e, nil, applied{}, due, triggerTimer, triggerTimer, "test", due); err != nil {
			return nil, err
		}
	}
	got := []string{}
	for _, x := range e.Open {
		got = append(got, x.Rule)
	}
	slices.Sort(got)
	return got, nil
}

var weekdays = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

func testEntry(s *rules.TestState, at time.Time) *state.Entry {
	ago := func(d float64) int64 { return at.Add(-time.Duration(d * float64(24*time.Hour))).UnixNano() }
	e := &state.Entry{OnHand: s.OnHand, UnitCost: s.UnitCost, Category: s.Category, Baselined: !s.Unbaselined}
	age := math.Max(s.AgeDays, s.HistoryDays)
	if s.DaysSinceCount != nil {
		age = math.Max(age, *s.DaysSinceCount)
		e.HasCount, e.LastCount, e.LastCountQty = true, ago(*s.DaysSinceCount), s.OnHand
	}
	if s.DaysSinceSale != nil {
		age = math.Max(age, *s.DaysSinceSale)
		e.LastSale = ago(*s.DaysSinceSale)
	}
	e.FirstSeen = ago(age)
	e.LastEvent = at.UnixNano()
	d := &e.Demand
	d.Day, d.Today, d.Days = dayOf(at.UnixNano()), s.TodayUnits, int32(s.HistoryDays)
	sd := s.DailySD
	if sd == 0 {
		sd = math.Sqrt(s.AvgDailyUnits)
	}
	d.Mean, d.Sq = s.AvgDailyUnits, sd*sd+s.AvgDailyUnits*s.AvgDailyUnits
	for w := 0; w < 7; w++ {
		m := s.AvgDailyUnits
		for name, v := range s.WeekdayUnits {
			if weekdays[strings.ToLower(name)] == w {
				m = v
			}
		}
		d.WDays[w], d.WMean[w], d.WSq[w] = int32(s.HistoryDays/7), m, sd*sd+m*m
	}
	for _, t := range s.InTransit {
		e.InTransit = append(e.InTransit, state.Transfer{ID: t.TransferID, Peer: t.From, Qty: t.Qty,
			At: at.Add(-time.Duration(t.AgeHours * float64(time.Hour))).UnixNano()})
	}
	for _, id := range s.OpenExceptions {
		e.Open = append(e.Open, state.Exception{ExceptionID: "test-" + id, Rule: id, Status: state.StatusOpen, Version: 1})
	}
	return e
}

func testEvent(te *rules.TestEvent, sku, loc string, i int, at time.Time) sources.Event {
	ev := sources.Event{EventID: fmt.Sprintf("test-%d", i), Source: te.Source, Type: te.Type, SKU: sku, Location: loc,
		TransferID: te.TransferID, ToLocation: te.ToLocation, FromLocation: te.FromLocation, Category: te.Category,
		EventTime: at.Add(-time.Duration(te.HoursAgo * float64(time.Hour)))}
	if ev.Source == "" {
		ev.Source = "pos"
	}
	if te.Qty != nil {
		ev.Qty, ev.HasQty = *te.Qty, true
	}
	if te.OnHand != nil {
		ev.OnHand, ev.HasOnHand = *te.OnHand, true
	}
	if te.UnitCost != nil {
		ev.UnitCost, ev.HasUnitCost = *te.UnitCost, true
	}
	return ev
}
