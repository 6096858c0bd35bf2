// Command forge is the whole of Forge in one binary: the server, the
// inference server, and the client commands that talk to them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// cli is what every command gets: where to write, and how to read the
// environment (through the config package's lookup only).
type cli struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

type command struct {
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

// commands is filled by register calls in each command group's file.
var commands = map[string]command{}

// register adds a top-level command; each command group's file calls it from init.
func register(name, summary string, run func(ctx context.Context, c *cli, args []string) error) {
	commands[name] = command{summary, run}
}

func init() {
	register("version", "print the version of forge (and of the server, if reachable)", cmdVersion)
	register("server", "run the control plane (API, tracking, registry, jobs, serving)", cmdServer)
	register("token", "create, list or revoke access tokens (create|ls|revoke)", cmdToken)
}

// usageError makes main exit with 2 and print the usage hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "forge:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// exitError carries an exit code without a message (e.g. a job's own code).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &cli{stdout: stdout, stderr: stderr, env: os.LookupEnv}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q (run `forge help`)", args[0])}
	}
	return cmd.run(ctx, c, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "forge: from stored data to a production endpoint, in one binary.")
	fmt.Fprintln(w, "\nUsage: forge COMMAND [flags] [args]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasPrefix(commands[n].summary, "(internal)") {
			continue // run by forge itself, not by people
		}
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun `forge COMMAND -h` for a command's flags.")
}

// subcommand dispatches "forge NOUN VERB ...".
func subcommand(ctx context.Context, c *cli, noun string, args []string, verbs map[string]func(context.Context, *cli, []string) error) error {
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 {
		return usageError{fmt.Sprintf("usage: forge %s %s", noun, strings.Join(names, "|"))}
	}
	fn, ok := verbs[args[0]]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q: want forge %s %s", args[0], noun, strings.Join(names, "|"))}
	}
	return fn(ctx, c, args[1:])
}
