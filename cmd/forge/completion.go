package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// cmdCompletion prints a completion script for commands and subcommands,
// built from the same tables as help (commands and docs), so it lists
// exactly what forge dispatches.
func cmdCompletion(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "completion")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: forge completion bash|zsh|fish"}
	}
	tree := commandTree()
	switch pos[0] {
	case "bash":
		return bashCompletion(c.stdout, tree)
	case "zsh":
		fmt.Fprintln(c.stdout, "#compdef forge")
		fmt.Fprintln(c.stdout, "autoload -U +X bashcompinit && bashcompinit")
		return bashCompletion(c.stdout, tree)
	case "fish":
		return fishCompletion(c.stdout, tree)
	}
	return usageError{fmt.Sprintf("forge completion %q: want bash, zsh or fish", pos[0])}
}

// commandTree maps each public command to its subcommands (none for a
// command that is not a group).
func commandTree() map[string][]string {
	tree := map[string][]string{}
	for _, n := range publicCommands() {
		tree[n] = nil
	}
	for key := range docs {
		group, verb, ok := strings.Cut(key, " ")
		if _, public := tree[group]; ok && public {
			tree[group] = append(tree[group], verb)
		}
	}
	for _, v := range tree {
		sort.Strings(v)
	}
	return tree
}

func bashCompletion(w io.Writer, tree map[string][]string) error {
	var cases strings.Builder
	for _, n := range publicCommands() {
		if verbs := tree[n]; len(verbs) > 0 {
			fmt.Fprintf(&cases, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", n, strings.Join(append(verbs, "help"), " "))
		}
	}
	_, err := fmt.Fprintf(w, `# bash completion for forge: source <(forge completion bash)
_forge() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "--help" -- "$cur"))
    return
  fi
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  if [[ $COMP_CWORD -eq 2 ]]; then
    case ${COMP_WORDS[1]} in
%s    help) COMPREPLY=($(compgen -W %q -- "$cur")) ;;
    *) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o default -F _forge forge
`, strings.Join(publicCommands(), " "), cases.String(), strings.Join(publicCommands(), " "))
	return err
}

func fishCompletion(w io.Writer, tree map[string][]string) error {
	fmt.Fprintln(w, "# fish completion for forge: forge completion fish > ~/.config/fish/completions/forge.fish")
	fmt.Fprintln(w, "complete -c forge -f")
	for _, n := range publicCommands() {
		fmt.Fprintf(w, "complete -c forge -n __fish_use_subcommand -a %s -d %q\n", n, commands[n].summary)
	}
	for _, n := range publicCommands() {
		for _, v := range tree[n] {
			fmt.Fprintf(w, "complete -c forge -n '__fish_seen_subcommand_from %s' -a %s -d %q\n", n, v, docs[n+" "+v].summary)
		}
	}
	return nil
}
