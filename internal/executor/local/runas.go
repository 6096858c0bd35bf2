package local

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/forge-mlops/forge"
)

// jobUser is the user a job's processes run as, when it is not the
// server's own.
type jobUser struct {
	name     string
	uid, gid uint32
	groups   []uint32 // supplementary groups, from /etc/group
	home     string   // from /etc/passwd; may not exist (a --no-create-home system user)
}

// lookupJobUser resolves run_as, a user name or a numeric uid. It returns
// nil for the server's own user: nothing to switch.
func lookupJobUser(runAs string) (*jobUser, error) {
	u, err := user.Lookup(runAs)
	if _, isNum := strconv.Atoi(runAs); err != nil && isNum == nil {
		u, err = user.LookupId(runAs)
	}
	if err != nil {
		return nil, fmt.Errorf("run_as: user %q does not exist on this machine: create it (useradd --system --no-create-home %s, as scripts/setup.sh does) or set run_as (FORGE_RUN_AS, --run-as) to another user", runAs, runAs)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("run_as: user %q has uid %q, gid %q: want numbers", runAs, u.Uid, u.Gid)
	}
	if uint32(uid) == uint32(os.Geteuid()) {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("run_as: running jobs as %q (uid %d) needs the server to run as root; it runs as uid %d (leave run_as empty to run jobs as the server's user)", runAs, uid, os.Geteuid())
	}
	ju := &jobUser{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != ju.gid {
			ju.groups = append(ju.groups, uint32(n))
		}
	}
	return ju, nil
}

// credential is the shim's --run-as argument: UID:GID[:G1,G2...].
func (u *jobUser) credential() string {
	s := fmt.Sprintf("%d:%d", u.uid, u.gid)
	if len(u.groups) > 0 {
		gs := make([]string, len(u.groups))
		for i, g := range u.groups {
			gs[i] = strconv.FormatUint(uint64(g), 10)
		}
		s += ":" + strings.Join(gs, ",")
	}
	return s
}

// parseCredential reads a --run-as argument.
func parseCredential(s string) (*syscall.Credential, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("--run-as %q: want UID:GID[:GROUPS]", s)
	}
	uid, err1 := strconv.ParseUint(parts[0], 10, 32)
	gid, err2 := strconv.ParseUint(parts[1], 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--run-as %q: want numbers", s)
	}
	// An empty list still calls setgroups: the process keeps none of the
	// server's groups.
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if len(parts) == 3 && parts[2] != "" {
		for _, g := range strings.Split(parts[2], ",") {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--run-as %q: group %q is not a number", s, g)
			}
			c.Groups = append(c.Groups, uint32(n))
		}
	}
	return c, nil
}

// prepare hands the job's folder to the user (the server wrote the code
// and inputs there as itself), and checks that the user can reach it.
func (u *jobUser) prepare(dir string) error {
	if err := u.reaches(dir); err != nil {
		return err
	}
	// Lchown: a link from the bundle is handed over, never what it points to.
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, int(u.uid), int(u.gid)); err != nil {
			return fmt.Errorf("hand the job folder to %s: %w", u.name, err)
		}
		return nil
	})
}

// reaches checks that every folder above dir lets the user through, so a
// job fails here with a message that says why, not in its first import.
func (u *jobUser) reaches(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		bit := fs.FileMode(0o001)
		switch {
		case st.Uid == u.uid:
			bit = 0o100
		case st.Gid == u.gid || slices.Contains(u.groups, st.Gid):
			bit = 0o010
		}
		if fi.Mode().Perm()&bit == 0 {
			return forge.Errorf(forge.Invalid, "the job folder is out of reach of run_as user %s: %s is mode %#o, owned by uid %d; choose a data_dir every folder above which lets others through (o+x), or set run_as (FORGE_RUN_AS, --run-as)",
				u.name, p, fi.Mode().Perm(), st.Uid)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// jobHome is HOME for the job: the user's own home where it exists, the
// job's folder otherwise (the server's HOME is not the user's to read).
func (u *jobUser) jobHome(dir string) string {
	if fi, err := os.Stat(u.home); err == nil && fi.IsDir() && u.home != "/" {
		return u.home
	}
	return dir
}
