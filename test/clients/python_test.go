package clients_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// pythonBin is Debian's interpreter, the one python3-redis installs for:
// another python3 (pyenv, a virtualenv) may come first on PATH.
const pythonBin = "/usr/bin/python3"

// TestPythonClient runs the redis-py tests in test/clients/python
// (unittest, with Debian's python3-redis) against a single node that
// requires a password and a 3-node cluster without one. They include the
// README's throttled-function decorator (python/throttled.py). The test is
// skipped when /usr/bin/python3 or its redis module is missing, except
// under CI (CI set), where .ci/run installs python3-redis.
func TestPythonClient(t *testing.T) {
	skip := t.Skip
	if os.Getenv("CI") != "" {
		skip = t.Fatal
	}
	if _, err := os.Stat(pythonBin); err != nil {
		skip(pythonBin + " not found: apt-get install python3-redis")
	}
	ver, err := exec.Command(pythonBin, "-c", "import redis; print(redis.__version__)").CombinedOutput()
	if err != nil {
		skip("redis-py is not installed for " + pythonBin + " (apt-get install python3-redis): " + strings.TrimSpace(string(ver)))
	}
	dir, err := filepath.Abs("python")
	if err != nil {
		t.Fatal(err)
	}
	// Read the scripts here so that go test's cache reruns the test when
	// they change.
	for _, f := range []string{"test_redis_py.py", "throttled.py"} {
		if _, err := os.ReadFile(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}

	const password = "python-clients-pw"
	single := testcluster.StartNode(t, testcluster.Options{RequirePass: password})
	cluster := testcluster.Start(t, 3, testcluster.Options{})
	cluster.WaitForLeader(10 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonBin, "-B", "test_redis_py.py")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"THROTTLEDB_ADDR="+single.Addr(),
		"THROTTLEDB_PASSWORD="+password,
		"THROTTLEDB_CLUSTER="+strings.Join(cluster.Addrs(), ","),
		"PYTHONPATH="+dir,
	)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-py %s tests failed after %v: %v\n%s", strings.TrimSpace(string(ver)), time.Since(start).Round(time.Millisecond), err, out)
	}
	// unittest's summary: tests ran, and none was skipped.
	m := regexp.MustCompile(`(?m)^Ran (\d+) tests? in `).FindSubmatch(out)
	if m == nil || string(m[1]) == "0" || !regexp.MustCompile(`(?m)^OK$`).Match(out) {
		t.Fatalf("unexpected unittest output:\n%s", out)
	}
	t.Logf("redis-py %s: %s tests passed in %v", strings.TrimSpace(string(ver)), m[1], time.Since(start).Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("python output:\n%s", out)
	}
}

// TestReadmePythonExample checks that the README quotes the decorator in
// python/throttled.py as it is, so the example readers copy is the one
// TestPythonClient runs.
func TestReadmePythonExample(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("python", "throttled.py"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(src), "def throttled(")
	if i < 0 {
		t.Fatal("no def throttled( in python/throttled.py")
	}
	if def := strings.TrimSpace(string(src[i:])); !strings.Contains(string(readme), def) {
		t.Errorf("README.md does not quote python/throttled.py's decorator as it is:\n%s", def)
	}
}
