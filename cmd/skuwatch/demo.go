package main

import "io"

func cmdDemo(args []string, stdout, stderr io.Writer) error     { return nil }
func cmdGenerate(args []string, stdout, stderr io.Writer) error { return nil }
