package image

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"sort"
	"strings"
)

// sharedLibs lists the shared libraries (the dynamic loader included) that
// the given binaries load, as ldd resolves them here. A static binary
// needs none.
func sharedLibs(ctx context.Context, bins ...string) ([]string, error) {
	set := map[string]bool{}
	for _, bin := range bins {
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(ctx, "ldd", bin)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		text := out.String() + errb.String()
		if strings.Contains(text, "not a dynamic executable") || strings.Contains(text, "statically linked") {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, strings.TrimSpace(text))
		}
		libs, err := parseLdd(out.String())
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", bin, err)
		}
		for _, l := range libs {
			set[l] = true
		}
	}
	var libs []string
	for l := range set {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	return libs, nil
}

// parseLdd reads ldd's lines: "libm.so.6 => /lib/.../libm.so.6 (0x...)",
// "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1 (0x...)" (in the
// kernel, no file) and "libx.so => not found" (an error).
func parseLdd(out string) ([]string, error) {
	var libs []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, target, arrow := strings.Cut(line, "=>")
		p := strings.TrimSpace(name)
		if arrow {
			p = strings.TrimSpace(target)
			if strings.HasPrefix(p, "not found") {
				return nil, fmt.Errorf("%s is not found", strings.TrimSpace(name))
			}
		}
		if i := strings.Index(p, " ("); i >= 0 {
			p = p[:i]
		}
		if !strings.HasPrefix(p, "/") {
			continue // the vDSO
		}
		libs = append(libs, p)
	}
	return libs, nil
}

// mergedUsr is where a library goes in the image's merged /usr:
// /lib/x86_64-linux-gnu/libc.so.6 is /usr/lib/x86_64-linux-gnu/libc.so.6,
// reached through the /lib symlink as on Debian.
func mergedUsr(p string) string {
	p = path.Clean(p)
	for _, d := range []string{"/lib/", "/lib64/", "/lib32/", "/bin/", "/sbin/"} {
		if strings.HasPrefix(p, d) {
			return "/usr" + p
		}
	}
	return p
}
