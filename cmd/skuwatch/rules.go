package main

import (
	"fmt"
	"io"

	"github.com/skuwatch/skuwatch/engine"
	"github.com/skuwatch/skuwatch/rules"
)

func cmdRules(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || (args[0] != "check" && args[0] != "test") {
		return userErr("usage: skuwatch rules check FILE | skuwatch rules test FILE")
	}
	rs, err := rules.LoadFile(args[1])
	if err != nil {
		return userError{err}
	}
	if args[0] == "check" {
		fmt.Fprintf(stdout, "%s: ok: version %s, %d rules, %d thresholds, %d tests (hash %s)\n",
			args[1], rs.Version, len(rs.Rules), len(rs.ThresholdNames()), len(rs.Tests), rs.Hash)
		return nil
	}
	fails := engine.TestRules(rs)
	for _, f := range fails {
		fmt.Fprintln(stdout, "FAIL", f.String())
	}
	if len(fails) > 0 {
		return userErr("%d of %d tests failed", len(fails), len(rs.Tests))
	}
	fmt.Fprintf(stdout, "%s: ok: %d tests passed\n", args[1], len(rs.Tests))
	return nil
}
