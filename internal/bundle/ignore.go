package bundle

import (
	"path"
	"strings"
)

// rule is one line of an ignore file, with gitignore's semantics for the
// common cases: `!` negates, a trailing `/` matches folders only, a pattern
// with a `/` (other than at the end) is anchored at its file's folder, `*`
// and `?` stay within a path segment, and `**` spans segments.
type rule struct {
	base    string // folder of the ignore file, slash-separated, "" at the root
	pattern string
	neg     bool
	dirOnly bool
	anchor  bool
}

func parseRules(text, base string) []rule {
	var rs []rule
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimRight(line, " ")
		r := rule{base: base}
		if strings.HasPrefix(line, "!") {
			r.neg, line = true, line[1:]
		} else if strings.HasPrefix(line, `\`) {
			line = line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dirOnly, line = true, strings.TrimRight(line, "/")
		}
		if strings.Contains(line, "/") {
			r.anchor, line = true, strings.TrimPrefix(line, "/")
		}
		if line == "" {
			continue
		}
		r.pattern = line
		rs = append(rs, r)
	}
	return rs
}

// ignored reports whether p (slash-separated, relative to the bundle root)
// is excluded; the last matching rule decides, as in git.
func ignored(rules []rule, p string, isDir bool) bool {
	ign := false
	for _, r := range rules {
		if r.dirOnly && !isDir {
			continue
		}
		rel := p
		if r.base != "" {
			if !strings.HasPrefix(p, r.base+"/") {
				continue
			}
			rel = p[len(r.base)+1:]
		}
		var ok bool
		if r.anchor {
			ok = match(r.pattern, rel)
		} else {
			ok = match(r.pattern, path.Base(rel))
		}
		if ok {
			ign = !r.neg
		}
	}
	return ign
}

// match matches a slash-separated pattern with `**` against a path.
func match(pattern, name string) bool {
	ps, ns := strings.Split(pattern, "/"), strings.Split(name, "/")
	return matchSegs(ps, ns)
}

func matchSegs(ps, ns []string) bool {
	for len(ps) > 0 {
		if ps[0] == "**" {
			if len(ps) == 1 {
				return true
			}
			for i := 0; i <= len(ns); i++ {
				if matchSegs(ps[1:], ns[i:]) {
					return true
				}
			}
			return false
		}
		if len(ns) == 0 {
			return false
		}
		if ok, err := path.Match(ps[0], ns[0]); err != nil || !ok {
			return false
		}
		ps, ns = ps[1:], ns[1:]
	}
	return len(ns) == 0
}
