package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// doc is what help says about a command beyond its flags, which come from
// the command's own FlagSet so they cannot drift from what it parses.
type doc struct {
	usage    string // synopsis after "forge ", e.g. "data add NAME SOURCE [flags]"
	summary  string // one line, lower case, no final period
	examples []string
}

// helpOutput stands in for a FlagSet's output: the flag package's own
// error text is dropped (run prints the error once, with a hint) and
// remembered, so that Usage can tell -h from a bad flag.
type helpOutput struct{ failed bool }

func (o *helpOutput) Write(b []byte) (int, error) { o.failed = true; return len(b), nil }

// hookHelp makes fs print the command's help on standard output for -h and
// --help, the same text `forge help CMD` prints.
func hookHelp(c *cli, name string, fs *flag.FlagSet) {
	out := &helpOutput{}
	fs.SetOutput(out)
	fs.Usage = func() {
		if out.failed {
			out.failed = false
			return
		}
		printHelp(c.stdout, name, fs)
	}
}

// printHelp prints a command's summary, synopsis, flags and examples.
func printHelp(w io.Writer, name string, fs *flag.FlagSet) {
	d, ok := docs[name]
	if !ok {
		d = doc{usage: name + " [flags]"}
	}
	if d.summary != "" {
		fmt.Fprintf(w, "%s\n\n", capitalize(d.summary))
	}
	fmt.Fprintf(w, "Usage:\n  forge %s\n", d.usage)
	if fs != nil {
		var flags []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
		if len(flags) > 0 {
			fmt.Fprintln(w, "\nFlags:")
			printFlags(w, flags)
		}
	}
	printExamples(w, d.examples)
}

// envDefaults are flags whose default comes from the environment or the
// user's home: help says where, not what (a token is never printed).
var envDefaults = map[string]bool{"server": true, "token": true, "onnxruntime-lib": true}

func printFlags(w io.Writer, flags []*flag.Flag) {
	type line struct{ left, right string }
	var lines []line
	width := 0
	for _, f := range flags {
		arg, usage := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if len(f.Name) == 1 {
			left = "-" + f.Name
		}
		if arg != "" {
			left += " " + arg
		}
		if def := f.DefValue; !envDefaults[f.Name] && !isZeroDefault(f, def) {
			if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
				def = strconv.Quote(def)
			}
			usage += " (default " + def + ")"
		}
		lines = append(lines, line{left, usage})
		width = max(width, len(left))
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l.left, l.right)
	}
}

// isZeroDefault: a default that says nothing (empty, zero, false, an
// empty list) is not shown, as the flag package does.
func isZeroDefault(_ *flag.Flag, def string) bool {
	return def == "" || def == "0" || def == "false" || def == "[]" || def == "0s"
}

func printExamples(w io.Writer, examples []string) {
	if len(examples) == 0 {
		return
	}
	fmt.Fprintln(w, "\nExamples:")
	for _, e := range examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// printGroupHelp prints a command group's synopsis, commands and examples.
func printGroupHelp(w io.Writer, noun string, verbs []string) {
	d := docs[noun]
	summary := d.summary
	if summary == "" {
		summary = commands[noun].summary
	}
	fmt.Fprintf(w, "%s\n\nUsage:\n  forge %s COMMAND [flags] [args]\n\nCommands:\n", capitalize(summary), noun)
	width := 0
	for _, v := range verbs {
		width = max(width, len(v))
	}
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, v, docs[noun+" "+v].summary)
	}
	printExamples(w, d.examples)
	fmt.Fprintf(w, "\nRun `forge %s COMMAND -h` for a command's flags and examples.\n", noun)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// didYouMean suggests the names closest to a mistyped one: those it is a
// prefix of, or within two edits (one for a name of three letters or less).
func didYouMean(typed string, names []string) string {
	limit := 2
	if len(typed) <= 3 {
		limit = 1
	}
	var close []string
	for _, n := range names {
		if d := editDistance(typed, n); d <= limit || (len(typed) >= 2 && strings.HasPrefix(n, typed)) {
			close = append(close, n)
		}
	}
	if len(close) == 0 {
		return ""
	}
	slices.SortFunc(close, func(a, b string) int { return editDistance(typed, a) - editDistance(typed, b) })
	return fmt.Sprintf("; did you mean %s?", strings.Join(close[:min(3, len(close))], ", "))
}

// editDistance is Levenshtein's distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
