// Package rules loads rule files (YAML with expr-lang expressions), compiles
// them once against the typed environment Env, and evaluates them.
//
// A Ruleset is immutable once loaded: reloads build a new one and swap a
// pointer, so evaluation never sees a half-updated set.
package rules
