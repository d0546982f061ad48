package rules

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// fileDoc is the YAML shape of a rule file. Unknown fields are rejected.
type fileDoc struct {
	Version    string       `yaml:"version"`
	ChangeNote string       `yaml:"change_note"`
	Thresholds thresholdDoc `yaml:"thresholds"`
	Rules      []ruleDoc    `yaml:"rules"`
	Tests      []TestCase   `yaml:"tests"`
}

type thresholdDoc struct {
	Default    map[string]Num            `yaml:"default"`
	Categories map[string]map[string]Num `yaml:"categories"`
	Seasons    []seasonDoc               `yaml:"seasons"`
}

type seasonDoc struct {
	Name       string                    `yaml:"name"`
	Months     []int                     `yaml:"months"`
	Default    map[string]Num            `yaml:"default"`
	Categories map[string]map[string]Num `yaml:"categories"`
	Line       int                       `yaml:"-"`
}

type ruleDoc struct {
	ID             string          `yaml:"id"`
	Description    string          `yaml:"description"`
	On             []string        `yaml:"on"`
	When           Expr            `yaml:"when"`
	Resolve        Expr            `yaml:"resolve"`
	Severity       Expr            `yaml:"severity"`
	Score          Expr            `yaml:"score"`
	Impact         Expr            `yaml:"impact"`
	Evidence       map[string]Expr `yaml:"evidence"`
	WakeAfterHours Expr            `yaml:"wake_after_hours"`
	Route          string          `yaml:"route"`
	SLA            Duration        `yaml:"sla"`
	Verify         []string        `yaml:"verify"`
	Contingency    string          `yaml:"contingency"`
	Line           int             `yaml:"-"`
}

// Expr is an expression in a rule file with the line it sits on.
type Expr struct {
	Src  string
	Line int
}

// UnmarshalYAML takes a scalar; numbers and booleans are expressions too.
func (e *Expr) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: an expression must be a string", n.Line)
	}
	e.Src, e.Line = strings.TrimSpace(n.Value), n.Line
	return nil
}

// Num is a threshold value with its line.
type Num struct {
	V    float64
	Line int
}

// UnmarshalYAML takes a number.
func (x *Num) UnmarshalYAML(n *yaml.Node) error {
	f, err := strconv.ParseFloat(n.Value, 64)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("line %d: threshold must be a number, got %q", n.Line, n.Value)
	}
	x.V, x.Line = f, n.Line
	return nil
}

// Duration is a YAML duration: Go syntax ("90m", "4h") or whole days ("3d").
type Duration struct {
	D    time.Duration
	Line int
	Set  bool
}

// UnmarshalYAML parses the duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var k int
		k, err = strconv.Atoi(days)
		d.D = time.Duration(k) * 24 * time.Hour
	} else {
		d.D, err = time.ParseDuration(s)
	}
	if err != nil || d.D <= 0 {
		return fmt.Errorf("line %d: %q is not a positive duration (like 4h, 90m or 2d)", n.Line, s)
	}
	d.Line, d.Set = n.Line, true
	return nil
}

// TestCase is one test inside a rule file: a prior state and an event (or a
// timer) and the rule ids expected to be firing afterwards.
type TestCase struct {
	Name string `yaml:"name"`
	// State is the key's ledger before the event.
	State TestState `yaml:"state"`
	// Event is applied to State. Leave it out and set TimerAfterHours for a
	// timer evaluation.
	Event *TestEvent `yaml:"event"`
	// TimerAfterHours evaluates the key's timer rules this many hours after
	// the event (or after At when there is no event).
	TimerAfterHours float64 `yaml:"timer_after_hours"`
	// At is the evaluation time; the default is 2026-06-10T12:00:00Z, a
	// Wednesday.
	At     string   `yaml:"at"`
	Expect []string `yaml:"expect"`
	Line   int      `yaml:"-"`
}

// TestState describes a prior ledger in the terms a person thinks in.
type TestState struct {
	OnHand         float64            `yaml:"on_hand"`
	Unbaselined    bool               `yaml:"unbaselined"` // no count or snapshot yet
	UnitCost       float64            `yaml:"unit_cost"`
	Category       string             `yaml:"category"`
	DaysSinceCount *float64           `yaml:"days_since_count"` // unset: never counted
	DaysSinceSale  *float64           `yaml:"days_since_sale"`  // unset: never sold
	AgeDays        float64            `yaml:"age_days"`         // days since the key was first seen
	AvgDailyUnits  float64            `yaml:"avg_daily_units"`
	WeekdayUnits   map[string]float64 `yaml:"weekday_units"` // e.g. {sat: 6}; others use avg_daily_units
	DailySD        float64            `yaml:"daily_sd"`
	HistoryDays    float64            `yaml:"history_days"`
	TodayUnits     float64            `yaml:"today_units"`
	InTransit      []TestTransfer     `yaml:"in_transit"`
	OpenExceptions []string           `yaml:"open"` // rule ids already open on the key
}

// TestTransfer is a transfer in transit to the key.
type TestTransfer struct {
	TransferID string  `yaml:"transfer_id"`
	From       string  `yaml:"from"`
	Qty        float64 `yaml:"qty"`
	AgeHours   float64 `yaml:"age_hours"` // hours since it was shipped
}

// TestEvent is a canonical event with defaults for what a test leaves out.
type TestEvent struct {
	Type         string   `yaml:"type"`
	Source       string   `yaml:"source"`
	Qty          *float64 `yaml:"qty"`
	OnHand       *float64 `yaml:"on_hand"`
	UnitCost     *float64 `yaml:"unit_cost"`
	TransferID   string   `yaml:"transfer_id"`
	ToLocation   string   `yaml:"to_location"`
	FromLocation string   `yaml:"from_location"`
	Category     string   `yaml:"category"`
	HoursAgo     float64  `yaml:"hours_ago"` // event time before At
}

// LoadFile reads, parses and compiles a rule file. Errors carry file:line.
func LoadFile(path string) (*Ruleset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return Load(path, b)
}

// Load parses and compiles rule file content; name is used in messages.
func Load(name string, b []byte) (*Ruleset, error) {
	var doc fileDoc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, yamlError(name, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	setLines(&root, &doc)
	rs, errs := compile(name, b, &doc)
	if len(errs) > 0 {
		return nil, &LoadError{File: name, Problems: errs}
	}
	return rs, nil
}

var (
	lineRE = regexp.MustCompile(`^line (\d+): `)
	typeRE = regexp.MustCompile(` in type [\w.]+`)
)

// yamlError turns the YAML library's errors into file:line: text lines.
func yamlError(name string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		m = typeRE.ReplaceAllString(m, "")
		if loc := lineRE.FindStringSubmatch(m); loc != nil {
			m = fmt.Sprintf("%s:%s: %s", name, loc[1], m[len(loc[0]):])
		} else {
			m = name + ": " + m
		}
		out[i] = m
	}
	return &LoadError{File: name, Problems: out}
}

// setLines copies the line of each rule, test and season from the node tree:
// the structs carry no positions of their own.
func setLines(root *yaml.Node, doc *fileDoc) {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return
	}
	items := func(m *yaml.Node, key string) []*yaml.Node {
		if m == nil || m.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.SequenceNode {
				return m.Content[i+1].Content
			}
		}
		return nil
	}
	top := root.Content[0]
	for i, n := range items(top, "rules") {
		if i < len(doc.Rules) {
			doc.Rules[i].Line = n.Line
		}
	}
	for i, n := range items(top, "tests") {
		if i < len(doc.Tests) {
			doc.Tests[i].Line = n.Line
		}
	}
	var th *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "thresholds" {
			th = top.Content[i+1]
		}
	}
	for i, n := range items(th, "seasons") {
		if i < len(doc.Thresholds.Seasons) {
			doc.Thresholds.Seasons[i].Line = n.Line
		}
	}
}

// LoadError lists every problem found in a rule file, each as file:line: text.
type LoadError struct {
	File     string
	Problems []string
}

func (e *LoadError) Error() string {
	return strings.Join(e.Problems, "\n")
}
