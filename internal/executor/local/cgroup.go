package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupRoot is where the cgroup v2 hierarchy is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// memoryLimit makes a cgroup v2 group with memory.max = bytes, under
// <root>/forge, for one job process (joinGroup puts it there). It returns the
// group's folder, or an error where cgroup v2 with the memory controller is
// not available (cgroup v1, no permission): the job then runs without a limit.
func memoryLimit(root, name string, bytes int64) (string, error) {
	ctrl, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil || !strings.Contains(" "+strings.TrimSpace(string(ctrl))+" ", " memory ") {
		return "", errors.New("no cgroup v2 memory controller")
	}
	parent := filepath.Join(root, "forge")
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	// Children of the forge group get the memory controller.
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
		return "", fmt.Errorf("enable memory for %s: %w", parent, err)
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	for file, v := range map[string]string{"memory.max": strconv.FormatInt(bytes, 10), "memory.swap.max": "0"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil && file == "memory.max" {
			os.Remove(dir)
			return "", fmt.Errorf("set %s: %w", file, err)
		}
	}
	return dir, nil
}

// joinGroup moves a process into a group.
func joinGroup(dir string, pid int) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("join %s: %w", dir, err)
	}
	return nil
}

// groupOOMKills reads the oom_kill counter of a cgroup v2 group.
func groupOOMKills(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, "memory.events"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// removeGroup removes an emptied group; the kernel may take a moment to let
// go of a process that just exited.
func removeGroup(dir string) {
	for i := 0; i < 50; i++ {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
