package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Trigger names a rule may list under `on`: the canonical event types, the
// internal transfer notice, "timer" for evaluations with no event, and
// "late" for any event that happened before the key's last count but
// arrived after it.
var Triggers = []string{"sale", "return", "receipt", "adjustment", "count", "snapshot",
	"transfer_out", "transfer_in", "transfer_expected", "timer", "late"}

const triggerLate = "late"

// Routes a rule may send its exceptions to.
const (
	RouteStore  = "store"
	RouteSupply = "supply"
)

// Ruleset is a compiled rule file. It is immutable and safe for concurrent
// use; evaluate it with an Evaluator per goroutine.
type Ruleset struct {
	File       string
	Version    string
	ChangeNote string
	Hash       string // first 12 hex digits of the file's SHA-256
	Rules      []*Rule
	Tests      []TestCase

	names      []string                          // declared threshold names, sorted
	thresholds map[string][12]map[string]float64 // category ("" = default) → month-1 → values
	byTrigger  map[string][]*Rule
	byLate     map[string][]*Rule // event type → its rules and the late rules
	wakers     []*Rule
}

// Rule is one compiled rule.
type Rule struct {
	ID          string
	Description string
	On          []string
	Route       string
	SLA         time.Duration
	Verify      []string
	Contingency string
	Line        int

	when, resolve, severity, score, impact, wake *vm.Program
	evidence                                     []namedProgram
}

type namedProgram struct {
	name string
	prog *vm.Program
}

// HasWake reports whether the rule asks for timer evaluations.
func (r *Rule) HasWake() bool { return r.wake != nil }

var idRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

func compile(file string, raw []byte, doc *fileDoc) (*Ruleset, []string) {
	var errs []string
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
	}
	sum := sha256.Sum256(raw)
	rs := &Ruleset{
		File: file, Version: strings.TrimSpace(doc.Version), ChangeNote: strings.TrimSpace(doc.ChangeNote),
		Hash: hex.EncodeToString(sum[:6]), Tests: doc.Tests, byTrigger: map[string][]*Rule{},
	}
	if rs.Version == "" {
		bad(1, "version is required (any string, e.g. 2026.12.1)")
	}
	if rs.ChangeNote == "" {
		bad(1, "change_note is required: say what changed and why, for the tuning log")
	}

	// Thresholds: every name is declared under default; overrides may only
	// change declared names.
	declared := map[string]bool{}
	for name, n := range doc.Thresholds.Default {
		if !idRE.MatchString(name) {
			bad(n.Line, "threshold name %q: use lower_snake_case", name)
		}
		declared[name] = true
	}
	checkOverrides := func(where string, m map[string]Num) {
		for name, n := range m {
			if !declared[name] {
				bad(n.Line, "%s sets threshold %q, which is not declared under thresholds.default", where, name)
			}
		}
	}
	for cat, m := range doc.Thresholds.Categories {
		checkOverrides("category "+cat, m)
	}
	for _, s := range doc.Thresholds.Seasons {
		if s.Name == "" {
			bad(s.Line, "season needs a name")
		}
		if len(s.Months) == 0 {
			bad(s.Line, "season %q needs months (1–12)", s.Name)
		}
		for _, m := range s.Months {
			if m < 1 || m > 12 {
				bad(s.Line, "season %q: month %d is not 1–12", s.Name, m)
			}
		}
		checkOverrides("season "+s.Name, s.Default)
		for cat, m := range s.Categories {
			checkOverrides("season "+s.Name+" category "+cat, m)
		}
	}
	for name := range declared {
		rs.names = append(rs.names, name)
	}
	sort.Strings(rs.names)
	rs.thresholds = resolveThresholds(&doc.Thresholds)

	seen := map[string]bool{}
	for i := range doc.Rules {
		rd := &doc.Rules[i]
		r, rerrs := compileRule(file, rd, declared)
		errs = append(errs, rerrs...)
		if r == nil {
			continue
		}
		if seen[r.ID] {
			bad(rd.Line, "rule id %q is used twice", r.ID)
		}
		seen[r.ID] = true
		rs.Rules = append(rs.Rules, r)
		for _, t := range r.On {
			rs.byTrigger[t] = append(rs.byTrigger[t], r)
		}
		if r.wake != nil {
			rs.wakers = append(rs.wakers, r)
		}
	}
	if len(doc.Rules) == 0 {
		bad(1, "no rules")
	}
	rs.byLate = map[string][]*Rule{}
	for _, t := range Triggers {
		for _, r := range rs.Rules {
			if slices.Contains(r.On, t) || slices.Contains(r.On, triggerLate) {
				rs.byLate[t] = append(rs.byLate[t], r)
			}
		}
	}
	for _, tc := range doc.Tests {
		for _, id := range tc.Expect {
			if !seen[id] {
				bad(tc.Line, "test %q expects unknown rule %q", tc.Name, id)
			}
		}
		if tc.Event == nil && tc.TimerAfterHours <= 0 {
			bad(tc.Line, "test %q needs an event or timer_after_hours", tc.Name)
		}
		if tc.Event != nil && !slices.Contains(Triggers, tc.Event.Type) {
			bad(tc.Line, "test %q: event type %q is not one of %s", tc.Name, tc.Event.Type, strings.Join(Triggers[:8], ", "))
		}
		if tc.At != "" {
			if _, err := time.Parse(time.RFC3339, tc.At); err != nil {
				bad(tc.Line, "test %q: at %q is not RFC 3339", tc.Name, tc.At)
			}
		}
	}
	return rs, errs
}

func compileRule(file string, rd *ruleDoc, declared map[string]bool) (*Rule, []string) {
	var errs []string
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d: rule %s: %s", file, line, rd.ID, fmt.Sprintf(format, args...)))
	}
	if !idRE.MatchString(rd.ID) {
		bad(rd.Line, "id %q: use lower_snake_case, at most 64 characters", rd.ID)
	}
	r := &Rule{ID: rd.ID, Description: rd.Description, Route: rd.Route, SLA: rd.SLA.D,
		Verify: rd.Verify, Contingency: strings.TrimSpace(rd.Contingency), Line: rd.Line}
	if len(rd.On) == 0 {
		r.On = slices.Clone(Triggers[:8]) // every canonical event type
	}
	for _, t := range rd.On {
		if !slices.Contains(Triggers, t) {
			bad(rd.Line, "on: %q is not one of %s", t, strings.Join(Triggers, ", "))
			continue
		}
		r.On = append(r.On, t)
	}
	if rd.Route != RouteStore && rd.Route != RouteSupply {
		bad(rd.Line, "route %q: must be %q or %q", rd.Route, RouteStore, RouteSupply)
	}
	if !rd.SLA.Set {
		bad(rd.Line, "sla is required (a duration like 4h)")
	}
	if len(rd.Verify) == 0 {
		bad(rd.Line, "verify needs at least one verification step")
	}
	if r.Contingency == "" {
		bad(rd.Line, "contingency is required: what to do if verification confirms the problem")
	}
	prog := func(what string, e Expr, required bool, kind expr.Option) *vm.Program {
		if e.Src == "" {
			if required {
				bad(rd.Line, "%s is required", what)
			}
			return nil
		}
		p, err := compileExpr(e.Src, kind, declared)
		if err != nil {
			bad(e.Line, "%s: %s", what, oneLine(err))
			return nil
		}
		return p
	}
	r.when = prog("when", rd.When, true, expr.AsBool())
	r.resolve = prog("resolve", rd.Resolve, false, expr.AsBool())
	r.severity = prog("severity", rd.Severity, true, expr.AsFloat64())
	r.score = prog("score", rd.Score, true, expr.AsFloat64())
	r.impact = prog("impact", rd.Impact, false, expr.AsFloat64())
	r.wake = prog("wake_after_hours", rd.WakeAfterHours, false, expr.AsFloat64())
	names := make([]string, 0, len(rd.Evidence))
	for name := range rd.Evidence {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if p := prog("evidence "+name, rd.Evidence[name], true, nil); p != nil {
			r.evidence = append(r.evidence, namedProgram{name, p})
		}
	}
	if r.wake != nil && !slices.Contains(r.On, "timer") {
		bad(rd.Line, "wake_after_hours is set but on does not list timer")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

func compileExpr(src string, kind expr.Option, declared map[string]bool) (*vm.Program, error) {
	chk := &thresholdCheck{declared: declared}
	opts := append([]expr.Option{expr.Env(Env{}), expr.Patch(chk), expr.Optimize(true)}, functions...)
	if kind != nil {
		opts = append(opts, kind)
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	if len(chk.unknown) > 0 {
		return nil, fmt.Errorf("unknown threshold t.%s (declare it under thresholds.default)", strings.Join(chk.unknown, ", t."))
	}
	return p, nil
}

// thresholdCheck rejects t.name for undeclared names: t is a map, so the
// type checker alone would let a typo through as 0.
type thresholdCheck struct {
	declared map[string]bool
	unknown  []string
}

func (c *thresholdCheck) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "t" {
		return
	}
	if s, ok := m.Property.(*ast.StringNode); ok && !c.declared[s.Value] {
		c.unknown = append(c.unknown, s.Value)
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " | ")), " ")
}

// resolveThresholds precomputes the values for every category and month:
// default ← season default ← category ← season category.
func resolveThresholds(d *thresholdDoc) map[string][12]map[string]float64 {
	cats := []string{""}
	for c := range d.Categories {
		cats = append(cats, c)
	}
	for _, s := range d.Seasons {
		for c := range s.Categories {
			if !slices.Contains(cats, c) {
				cats = append(cats, c)
			}
		}
	}
	out := make(map[string][12]map[string]float64, len(cats))
	for _, c := range cats {
		var months [12]map[string]float64
		for m := 1; m <= 12; m++ {
			v := map[string]float64{}
			apply := func(src map[string]Num) {
				for k, n := range src {
					v[k] = n.V
				}
			}
			apply(d.Default)
			for _, s := range d.Seasons {
				if slices.Contains(s.Months, m) {
					apply(s.Default)
				}
			}
			if c != "" {
				apply(d.Categories[c])
			}
			for _, s := range d.Seasons {
				if slices.Contains(s.Months, m) && c != "" {
					apply(s.Categories[c])
				}
			}
			months[m-1] = v
		}
		out[c] = months
	}
	return out
}

// Thresholds returns the values in force for a category in a month. The map
// is shared: callers must not modify it.
func (rs *Ruleset) Thresholds(category string, month time.Month) map[string]float64 {
	ms, ok := rs.thresholds[category]
	if !ok {
		ms = rs.thresholds[""]
	}
	return ms[month-1]
}

// ThresholdNames lists the declared thresholds, sorted.
func (rs *Ruleset) ThresholdNames() []string { return rs.names }

// For returns the rules evaluated on a trigger (an event type or "timer").
func (rs *Ruleset) For(trigger string) []*Rule { return rs.byTrigger[trigger] }

// ForEvent returns the rules evaluated on an event of a type, adding the
// "late" rules when the event is late; each rule once, in file order.
func (rs *Ruleset) ForEvent(typ string, late bool) []*Rule {
	if late {
		return rs.byLate[typ]
	}
	return rs.byTrigger[typ]
}

// Wakers are the rules with a wake_after_hours expression.
func (rs *Ruleset) Wakers() []*Rule { return rs.wakers }

// Rule returns the rule with an id, or nil.
func (rs *Ruleset) Rule(id string) *Rule {
	for _, r := range rs.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}
