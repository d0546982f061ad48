package rules

import (
	"strings"
	"testing"
	"time"
)

const minimal = `version: "1"
change_note: test
thresholds:
  default: {limit: 0}
rules:
  - id: neg
    when: state.on_hand < t.limit
    severity: "3"
    score: "50"
    route: store
    sla: 4h
    verify: [look]
    contingency: count it
`

func TestLoadMinimal(t *testing.T) {
	rs, err := Load("m.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	r := rs.Rule("neg")
	if r == nil || r.SLA != 4*time.Hour || len(rs.For("sale")) != 1 || len(rs.For("timer")) != 0 {
		t.Fatalf("rule %+v", r)
	}
	var ev Evaluator
	v, err := ev.Judge(r, &Env{State: StateEnv{OnHand: -1}, T: rs.Thresholds("", time.June)}, false)
	if err != nil || v != Fire {
		t.Errorf("Judge = %v, %v", v, err)
	}
	v, _ = ev.Judge(r, &Env{State: StateEnv{OnHand: 1}, T: rs.Thresholds("", time.June)}, true)
	if v != Cleared {
		t.Errorf("cleared condition with an open exception = %v", v)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown field", "    route: store\n", "    route: store\n    colour: red\n", "m.yaml:11: field colour not found"},
		{"type error", "state.on_hand < t.limit", `state.on_hand < "x"`, "m.yaml:7: rule neg: when:"},
		{"not bool", "state.on_hand < t.limit", `state.on_hand`, "m.yaml:7: rule neg: when:"},
		{"unknown threshold", "state.on_hand < t.limit", "state.on_hand < t.limt", "m.yaml:7: rule neg: when: unknown threshold t.limt"},
		{"unknown variable", "state.on_hand < t.limit", "stock < 0", "m.yaml:7: rule neg: when:"},
		{"bad route", "route: store", "route: shop", `route "shop"`},
		{"bad sla", "sla: 4h", "sla: soon", `m.yaml:11: "soon" is not a positive duration`},
		{"no version", `version: "1"`, `version: ""`, "version is required"},
		{"no change note", "change_note: test", "change_note: ''", "change_note is required"},
		{"bad trigger", "    when:", "    on: [sold]\n    when:", `on: "sold"`},
		{"wake without timer", "    route: store", "    wake_after_hours: \"1\"\n    route: store", "wake_after_hours is set but on does not list timer"},
		{"override undeclared", "  default: {limit: 0}", "  default: {limit: 0}\n  categories: {toys: {limitt: 1}}", `sets threshold "limitt"`},
		{"bad month", "  default: {limit: 0}", "  default: {limit: 0}\n  seasons: [{name: x, months: [13]}]", "month 13"},
		{"bad id", "id: neg", "id: Neg-1", "lower_snake_case"},
		{"no verify", "    verify: [look]\n", "", "verify needs"},
		{"test expects unknown rule", "    contingency: count it\n", "    contingency: count it\ntests:\n  - {name: x, event: {type: sale, qty: 1}, expect: [nope]}\n", `m.yaml:15: test "x" expects unknown rule "nope"`},
	}
	for _, c := range cases {
		src := strings.Replace(minimal, c.old, c.new, 1)
		if src == minimal {
			t.Fatalf("%s: edit did not apply", c.name)
		}
		_, err := Load("m.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestThresholdResolution(t *testing.T) {
	src := strings.Replace(minimal, "  default: {limit: 0}", `  default: {limit: 1}
  categories: {toys: {limit: 2}}
  seasons:
    - {name: holiday, months: [12], default: {limit: 3}, categories: {toys: {limit: 4}}}`, 1)
	rs, err := Load("m.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cat   string
		month time.Month
		want  float64
	}{{"", time.June, 1}, {"toys", time.June, 2}, {"", time.December, 3}, {"toys", time.December, 4}, {"food", time.December, 3}} {
		if got := rs.Thresholds(c.cat, c.month)["limit"]; got != c.want {
			t.Errorf("%q %s: limit %g, want %g", c.cat, c.month, got, c.want)
		}
	}
}

func TestNBTail(t *testing.T) {
	// Poisson(2): P(X ≥ 0) = 1, P(X ≥ 1) = 1 − e^-2, P(X ≥ 5) ≈ 0.052653.
	if got := NBTail(0, 2, 1); got != 1 {
		t.Errorf("P(X≥0) = %g", got)
	}
	if got := NBTail(1, 2, 1.41421356); got < 0.8646 || got > 0.8647 {
		t.Errorf("Poisson P(X≥1) = %g", got)
	}
	if got := NBTail(5, 2, 1.41421356); got < 0.05265 || got > 0.05266 {
		t.Errorf("Poisson P(X≥5) = %g", got)
	}
	// Overdispersion fattens the tail.
	if NBTail(12, 2, 3) <= NBTail(12, 2, 1.5) {
		t.Error("a wider demand distribution should make 12 units more likely")
	}
}

// FuzzLoad: the loader never panics, whatever the file says.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add(Default)
	f.Add([]byte("rules: [{id: x, when: '1 +'}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := Load("f.yaml", b)
		if err == nil && (rs.Version == "" || len(rs.Rules) == 0) {
			t.Fatal("accepted a file without a version or rules")
		}
	})
}
