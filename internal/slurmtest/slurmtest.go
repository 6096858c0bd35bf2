// Package slurmtest gives tests a real one-node Slurm cluster: munged,
// slurmctld and slurmd from Debian's slurm-wlm and munge packages, started
// by hand as background processes with every file under a temp folder, on
// free ports, with two fake GPUs. One cluster serves a whole test binary.
//
// A package that uses it must call Main from its TestMain so the daemons
// are stopped and their folder removed when the tests end. It installs
// nothing: `apt-get install slurm-wlm munge` does.
package slurmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Packages are the Debian packages the cluster needs.
const Packages = "slurm-wlm munge"

// Cluster is a running one-node cluster.
type Cluster struct {
	// Dir holds the configuration, state, logs and sockets.
	Dir string
	// Conf is the slurm.conf path; commands need SLURM_CONF=Conf.
	Conf string
	// Node is the node's name (this host's short name); Partition its partition.
	Node, Partition string
	// CPUs, MemoryMB and GPUs are what the node offers jobs.
	CPUs, MemoryMB, GPUs int
	// JobComp is the job completion file (JobCompType=jobcomp/filetxt).
	JobComp string
}

// Env is the environment Slurm commands need to reach the cluster.
func (c *Cluster) Env() []string { return []string{"SLURM_CONF=" + c.Conf} }

// Command makes a Slurm command that talks to the cluster.
func (c *Cluster) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), c.Env()...)
	return cmd
}

// Main runs the tests and then stops the shared cluster, if one was
// started. Call it from TestMain: os.Exit(slurmtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	shared.stop()
	return code
}

// Start returns the shared cluster, starting it on first use. It fails the
// test, naming the packages, when Slurm is not installed.
func Start(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() { shared.c, shared.err = boot() })
	if shared.err != nil {
		t.Fatalf("start a one-node slurm cluster: %v", shared.err)
	}
	return shared.c
}

var shared sharedCluster

type sharedCluster struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Fake GPUs: slurmd needs device files for its gres, any character device
// will do (these are /dev/null's numbers).
const gpus = 2

func boot() (*Cluster, error) {
	for _, bin := range []string{"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sacct", "sinfo"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + bin); err2 != nil {
				return nil, fmt.Errorf("%s not found: install the Debian packages %q (apt-get install -y %s)", bin, Packages, Packages)
			}
		}
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the test cluster runs its daemons as root (slurmd must), and this is uid %d", os.Geteuid())
	}
	dir, err := os.MkdirTemp("", "forge-slurm-")
	if err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	host, _, _ = strings.Cut(host, ".")
	c := &Cluster{
		Dir: dir, Conf: filepath.Join(dir, "slurm.conf"), Node: host, Partition: "forge",
		// The node claims more CPUs and memory than the machine has
		// (config_overrides), so tests that only sleep can run side by side.
		CPUs: max(8, runtime.NumCPU()), MemoryMB: 16000, GPUs: gpus,
		JobComp: filepath.Join(dir, "jobcomp.txt"),
	}
	shared.c = c // so stop cleans up a half-started cluster
	if err := c.configure(); err != nil {
		return nil, err
	}
	if err := c.startDaemons(); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, c.logs())
	}
	return c, nil
}

func (c *Cluster) configure() error {
	for _, d := range []string{"state", "spool", "dev", "run"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	key := make([]byte, 1024)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(c.Dir, "munge.key"), key, 0o400); err != nil {
		return err
	}
	for i := range gpus {
		dev := filepath.Join(c.Dir, "dev", "gpu"+strconv.Itoa(i))
		if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, int(mkdev(1, 3))); err != nil {
			return fmt.Errorf("mknod fake gpu: %w", err)
		}
	}
	ctldPort, err := freePort()
	if err != nil {
		return err
	}
	dPort, err := freePort()
	if err != nil {
		return err
	}
	d := c.Dir
	conf := fmt.Sprintf(`# A one-node cluster for Forge's tests.
ClusterName=forgetest
SlurmctldHost=%[2]s(127.0.0.1)
SlurmctldPort=%[3]d
SlurmdPort=%[4]d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=%[1]s/run/munge.socket
CredType=cred/munge
StateSaveLocation=%[1]s/state
SlurmdSpoolDir=%[1]s/spool
SlurmctldPidFile=%[1]s/run/slurmctld.pid
SlurmdPidFile=%[1]s/run/slurmd.pid
SlurmctldLogFile=%[1]s/slurmctld.log
SlurmdLogFile=%[1]s/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: exit codes come from squeue, scontrol (for MinJobAge) and the
# job completion file.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=%[5]s
MinJobAge=300
KillWait=2
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# Start jobs on submit rather than up to 3 s later.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=64
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=%[2]s NodeAddr=127.0.0.1 CPUs=%[6]d RealMemory=%[7]d Gres=gpu:%[8]d State=UNKNOWN
PartitionName=%[9]s Nodes=%[2]s Default=YES MaxTime=INFINITE State=UP
`, d, c.Node, ctldPort, dPort, c.JobComp, c.CPUs, c.MemoryMB, gpus, c.Partition)
	if err := os.WriteFile(c.Conf, []byte(conf), 0o644); err != nil {
		return err
	}
	// A gres.conf with only Count= is dropped by slurmd: it needs the files.
	gres := fmt.Sprintf("AutoDetect=off\nNodeName=%s Name=gpu File=%s/dev/gpu[0-%d]\n", c.Node, d, gpus-1)
	return os.WriteFile(filepath.Join(d, "gres.conf"), []byte(gres), 0o644)
}

func mkdev(major, minor uint32) uint64 {
	return uint64(major)<<8 | uint64(minor)
}

func (c *Cluster) startDaemons() error {
	d := c.Dir
	steps := [][]string{
		{"munged", "--key-file=" + d + "/munge.key", "--socket=" + d + "/run/munge.socket",
			"--pid-file=" + d + "/run/munged.pid", "--log-file=" + d + "/munged.log",
			"--seed-file=" + d + "/munge.seed", "--force"},
		{"slurmctld"},
		{"slurmd", "-N", c.Node},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, argv := range steps {
		// Each daemon forks into the background and returns.
		cmd := c.Command(ctx, sbin(argv[0]), argv[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", argv[0], err, out)
		}
	}
	var last []byte
	for range 300 {
		out, err := c.Command(ctx, "sinfo", "--noheader", "--Node", "--format=%T").CombinedOutput()
		last = out
		if err == nil && strings.TrimSpace(string(out)) == "idle" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the node never became idle (sinfo: %s)", bytes.TrimSpace(last))
}

func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return "/usr/sbin/" + name
}

// logs returns the daemons' log tails, for a failed start.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, f := range []string{"munged.log", "slurmctld.log", "slurmd.log"} {
		data, _ := os.ReadFile(filepath.Join(c.Dir, f))
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s", f, data)
	}
	return b.String()
}

// stop kills the daemons (by the pids they recorded: no process is
// stopped by name) and removes the folder.
func (s *sharedCluster) stop() {
	c := s.c
	if c == nil {
		return
	}
	// Jobs left running would outlive slurmd in their slurmstepd.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Command(ctx, "scancel", "--partition="+c.Partition).Run()
	for range 50 {
		out, err := c.Command(ctx, "squeue", "--noheader", "--format=%i").Output()
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The cluster's state is thrown away: the daemons need not save it.
	// All are told at once, and killed if they take their time.
	var pids []int
	for _, name := range []string{"slurmd", "slurmctld", "munged"} {
		b, err := os.ReadFile(filepath.Join(c.Dir, "run", name+".pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			pids = append(pids, pid)
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	for _, pid := range pids {
		for range 10 {
			if syscall.Kill(pid, 0) != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	os.RemoveAll(c.Dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
