package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/state"
)

// Exception changes.
const (
	ChangeOpened   = "opened"
	ChangeUpdated  = "updated"
	ChangeResolved = "resolved"
)

// lifecycle applies rule verdicts for one key at one evaluation: at most one
// open exception per rule and key; a re-trigger that changes anything makes a
// new version; a cleared condition resolves.
type lifecycle struct {
	p          *Processor
	key        string
	e          *state.Entry
	rs         *rules.Ruleset
	now        int64
	trigger    string
	trigSource string
	trigID     string
	eventTime  int64
}

func openIndex(e *state.Entry, rule string) int {
	for i := range e.Open {
		if e.Open[i].Rule == rule {
			return i
		}
	}
	return -1
}

// ExceptionID is stable for one episode of one rule on one key: it hashes the
// rule, the key and the event (or timer) that opened the episode.
func ExceptionID(rule, stateKey, trigSource, trigID string) string {
	h := sha256.New()
	for _, s := range []string{rule, stateKey, trigSource, trigID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:10])
}

func ts(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func (l *lifecycle) fire(r *rules.Rule, idx int, d rules.Details) error {
	now := ts(l.now)
	if idx < 0 {
		sku, loc := splitKey(l.key)
		x := state.Exception{
			ExceptionID: ExceptionID(r.ID, l.key, l.trigSource, l.trigID),
			Rule:        r.ID, SKU: sku, Location: loc, Category: l.e.Category,
			Severity: d.Severity, Score: d.Score, Status: state.StatusOpen, Change: ChangeOpened,
			DetectedAt: now, UpdatedAt: now, EventTime: ts(l.eventTime),
			RulesetVersion: l.rs.Version, Route: r.Route, Owner: owner(r.Route, loc),
			SLADueAt: now.Add(r.SLA), Evidence: d.Evidence, FinancialImpact: d.Impact,
			Verification: r.Verify, Contingency: r.Contingency,
			TriggerSource: l.trigSource, TriggerEventID: l.trigID, Version: 1,
		}
		l.e.Open = append(l.e.Open, x)
		l.p.Counts.Opened++
		return l.emit(&l.e.Open[len(l.e.Open)-1])
	}
	x := &l.e.Open[idx]
	if !material(x, d) {
		return nil // nothing new to say
	}
	if d.Severity > x.Severity {
		// A worse episode is due sooner: the SLA restarts from now if that is earlier.
		if due := now.Add(r.SLA); due.Before(x.SLADueAt) {
			x.SLADueAt = due
		}
	}
	x.Severity, x.Score, x.FinancialImpact, x.Evidence = d.Severity, d.Score, d.Impact, d.Evidence
	x.Change, x.UpdatedAt, x.EventTime, x.RulesetVersion = ChangeUpdated, now, ts(l.eventTime), l.rs.Version
	x.Version++
	l.p.Counts.Updated++
	return l.emit(x)
}

// material reports whether a re-trigger says something new: another
// severity, a score at least a point away, or an impact or evidence value at
// least 1% away (a string or boolean that differs at all). Values that drift
// with the clock, like days since a count, then make an update now and then
// instead of on every event.
func material(x *state.Exception, d rules.Details) bool {
	if x.Severity != d.Severity || math.Abs(x.Score-d.Score) >= 1 || moved(x.FinancialImpact, d.Impact) {
		return true
	}
	if len(x.Evidence) != len(d.Evidence) {
		return true
	}
	for k, nv := range d.Evidence {
		ov, ok := x.Evidence[k]
		if !ok {
			return true
		}
		of, ok1 := ov.(float64)
		nf, ok2 := nv.(float64)
		if ok1 && ok2 {
			if moved(of, nf) {
				return true
			}
			continue
		}
		if !reflect.DeepEqual(ov, nv) {
			return true
		}
	}
	return false
}

func moved(a, b float64) bool {
	return math.Abs(a-b) > 0.01*math.Max(math.Abs(a), math.Abs(b)) && math.Abs(a-b) >= 1e-9
}

func (l *lifecycle) resolve(idx int, cause string) error {
	x := l.e.Open[idx]
	now := ts(l.now)
	x.Status, x.Change, x.UpdatedAt, x.ResolvedAt = state.StatusResolved, ChangeResolved, now, &now
	x.ResolutionCause, x.RulesetVersion = cause, l.rs.Version
	if l.trigger != triggerTimer {
		x.EventTime = ts(l.eventTime)
	}
	x.Version++
	l.e.Open = append(l.e.Open[:idx], l.e.Open[idx+1:]...)
	l.p.Counts.Resolved++
	return l.emit(&x)
}

// dropRemovedRules resolves exceptions whose rule is no longer in the running
// ruleset: nothing would ever clear them otherwise.
func (l *lifecycle) dropRemovedRules() error {
	for i := len(l.e.Open) - 1; i >= 0; i-- {
		if l.rs.Rule(l.e.Open[i].Rule) == nil {
			if err := l.resolve(i, "rule removed from ruleset "+l.rs.Version); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *lifecycle) emit(x *state.Exception) error {
	x.Encoded = nil
	j, err := json.Marshal(x)
	if err != nil {
		return fmt.Errorf("engine: encode exception %s: %w", x.ExceptionID, err)
	}
	x.Encoded = j
	l.p.m.exceptions.WithLabelValues(x.Rule, x.Change, strconv.Itoa(x.Severity)).Inc()
	if err := l.p.batch.PutException(x.ExceptionID, j); err != nil {
		return err
	}
	return l.p.append(state.StreamExceptions, j)
}

// owner names who an exception is routed to: the store team of the location,
// or the supply team answering for it.
func owner(route, location string) string { return route + ":" + location }
