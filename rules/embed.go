package rules

import _ "embed"

// Default is the content of default.yaml, the shipped ruleset, so the binary
// runs without a rules file.
//
//go:embed default.yaml
var Default []byte
