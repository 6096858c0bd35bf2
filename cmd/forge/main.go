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
	"time"
)

// cli is what every command gets: where to write, how to read the
// environment (through the config package's lookup only), the clock that
// tables say "3m ago" by, and where progress is drawn (nil: nowhere, as
// when stderr is not a terminal).
type cli struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
	now            func() time.Time
	progress       io.Writer
}

// newCLI is the cli of a real run: progress is drawn on stderr when it is a
// terminal (and TERM is not "dumb").
func newCLI(stdout, stderr io.Writer) *cli {
	c := &cli{stdout: stdout, stderr: stderr, env: os.LookupEnv, now: time.Now}
	if t, _ := c.env("TERM"); isTerminal(stderr) && t != "dumb" {
		c.progress = stderr
	}
	return c
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
	register("completion", "print a shell completion script (bash|zsh|fish)", cmdCompletion)
	// run answers "forge help ..." itself; this entry lists help among the
	// commands and answers "forge help help".
	register("help", "print help for a command: forge help COMMAND [SUBCOMMAND]", func(ctx context.Context, c *cli, args []string) error {
		printHelp(c.stdout, "help", nil)
		return nil
	})
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
	return newCLI(stdout, stderr).run(ctx, args)
}

func (c *cli) run(ctx context.Context, args []string) error {
	stdout := c.stdout
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(stdout)
		return nil
	}
	if args[0] == "help" {
		// forge help GROUP [CMD] is forge GROUP [CMD] -h.
		if len(args) == 1 {
			usage(stdout)
			return nil
		}
		if strings.HasPrefix(args[1], "-") {
			printHelp(stdout, "help", nil)
			return nil
		}
		if len(args) > 3 {
			return usageError{"usage: forge help [COMMAND [SUBCOMMAND]]"}
		}
		if _, ok := commands[args[1]]; !ok {
			return unknownCommand(args[1])
		}
		args = append(args[1:len(args):len(args)], "-h")
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return unknownCommand(args[0])
	}
	return cmd.run(ctx, c, args[1:])
}

func unknownCommand(name string) error {
	return usageError{fmt.Sprintf("unknown command %q%s (run `forge help`)", name, didYouMean(name, publicCommands()))}
}

// publicCommands lists the commands people run, sorted.
func publicCommands() []string {
	names := make([]string, 0, len(commands))
	for n, cmd := range commands {
		if !strings.HasPrefix(cmd.summary, "(internal)") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "forge: from stored data to a production endpoint, in one binary.")
	fmt.Fprintln(w, "\nUsage: forge COMMAND [flags] [args]\n\nCommands:")
	for _, n := range publicCommands() {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun `forge help COMMAND` (or `forge COMMAND -h`) for a command's flags and examples,")
	fmt.Fprintln(w, "`forge completion bash|zsh|fish` for shell completion.")
}

// subcommand dispatches "forge NOUN VERB ...". Alone, with -h or --help,
// the group prints its help; "forge NOUN help VERB" is "forge NOUN VERB -h".
func subcommand(ctx context.Context, c *cli, noun string, args []string, verbs map[string]func(context.Context, *cli, []string) error) error {
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || (args[0] == "help" && len(args) == 1) {
		printGroupHelp(c.stdout, noun, names)
		return nil
	}
	if args[0] == "help" {
		args = []string{args[1], "-h"}
	}
	fn, ok := verbs[args[0]]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q for forge %s%s (commands: %s)", args[0], noun, didYouMean(args[0], names), strings.Join(names, ", "))}
	}
	return fn(ctx, c, args[1:])
}
