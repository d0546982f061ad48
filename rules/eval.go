package rules

import (
	"fmt"
	"math"
	"strconv"

	"github.com/expr-lang/expr/vm"
)

// Evaluator runs compiled rules. It reuses one VM, so it is for one
// goroutine; evaluation is deterministic and has no side effects.
type Evaluator struct {
	vm vm.VM
}

// Verdict is a rule's answer for one evaluation.
type Verdict int

// Verdicts.
const (
	Hold    Verdict = iota // neither firing nor cleared: leave any exception as it is
	Fire                   // the condition holds
	Cleared                // the condition cleared: resolve an open exception
)

// Judge evaluates when, and, if it is false and an exception is open, the
// rule's resolve condition (or, without one, "when is false").
func (e *Evaluator) Judge(r *Rule, env *Env, open bool) (Verdict, error) {
	fired, err := e.bool(r.when, env)
	if err != nil {
		return Hold, fmt.Errorf("rule %s: when: %w", r.ID, err)
	}
	if fired {
		return Fire, nil
	}
	if !open {
		return Hold, nil
	}
	if r.resolve == nil {
		return Cleared, nil
	}
	ok, err := e.bool(r.resolve, env)
	if err != nil {
		return Hold, fmt.Errorf("rule %s: resolve: %w", r.ID, err)
	}
	if ok {
		return Cleared, nil
	}
	return Hold, nil
}

// Details are what a firing rule reports.
type Details struct {
	Severity int     // 1–5
	Score    float64 // 0–100
	Impact   float64 // money, ≥ 0
	Evidence map[string]any
}

// Details evaluates a firing rule's severity, score, impact and evidence.
// Severity is clamped to 1–5 and score to 0–100, so a rule can never emit a
// value outside the contract.
func (e *Evaluator) Details(r *Rule, env *Env) (Details, error) {
	var d Details
	sev, err := e.num(r.severity, env)
	if err != nil {
		return d, fmt.Errorf("rule %s: severity: %w", r.ID, err)
	}
	d.Severity = int(math.Round(clamp(sev, 1, 5)))
	score, err := e.num(r.score, env)
	if err != nil {
		return d, fmt.Errorf("rule %s: score: %w", r.ID, err)
	}
	d.Score = math.Round(clamp(score, 0, 100)*10) / 10
	if r.impact != nil {
		imp, err := e.num(r.impact, env)
		if err != nil {
			return d, fmt.Errorf("rule %s: impact: %w", r.ID, err)
		}
		d.Impact = math.Round(math.Max(imp, 0)*100) / 100
	}
	d.Evidence = make(map[string]any, len(r.evidence))
	for _, ev := range r.evidence {
		v, err := e.vm.Run(ev.prog, env)
		if err != nil {
			return d, fmt.Errorf("rule %s: evidence %s: %w", r.ID, ev.name, err)
		}
		if f, ok := v.(float64); ok {
			v = roundEvidence(f)
		}
		d.Evidence[ev.name] = v
	}
	return d, nil
}

// WakeAfterHours evaluates the rule's wake expression; ok is false when the
// rule has none or asks for no timer (a value ≤ 0 or not finite).
func (e *Evaluator) WakeAfterHours(r *Rule, env *Env) (hours float64, ok bool, err error) {
	if r.wake == nil {
		return 0, false, nil
	}
	h, err := e.num(r.wake, env)
	if err != nil {
		return 0, false, fmt.Errorf("rule %s: wake_after_hours: %w", r.ID, err)
	}
	if h <= 0 || math.IsNaN(h) || math.IsInf(h, 0) {
		return 0, false, nil
	}
	return h, true, nil
}

func (e *Evaluator) bool(p *vm.Program, env *Env) (bool, error) {
	v, err := e.vm.Run(p, env)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}

func (e *Evaluator) num(p *vm.Program, env *Env) (float64, error) {
	v, err := e.vm.Run(p, env)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return 0, fmt.Errorf("result is NaN")
		}
		return x, nil
	case int:
		return float64(x), nil
	}
	return 0, fmt.Errorf("result %v is not a number", v)
}

func clamp(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }

// roundEvidence keeps evidence readable: 6 significant digits are plenty for
// units, money and probabilities.
func roundEvidence(f float64) any {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 6, 64), 64)
	return r
}
