package simulate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/cmd/throttledb/internal/embedded"
)

// Config configures a simulation.
type Config struct {
	// Workers is the number of concurrent workers. Default 7.
	Workers int
	// Interval is the minimum interval between two requests. Default 3 s.
	Interval time.Duration
	// Max is how many slots may be reserved ahead (max_permits). 0 is
	// allowed: only "go now" grants.
	Max int
	// Duration is how long workers keep acquiring. Reservations held when it
	// ends are still used. Default 30 s.
	Duration time.Duration
	// Addrs lists the cluster's RESP addresses. Empty: start an embedded
	// single-node server on 127.0.0.1 with a temporary data directory.
	Addrs []string
	// Password authenticates to Addrs.
	Password string
	// TLSConfig, when set, connects to Addrs with TLS.
	TLSConfig *tls.Config
	// Key is the throttle key. Default "simulate-<unix ns>", fresh for every
	// run so an earlier run's reservations do not interfere.
	Key string
}

func (c Config) withDefaults() Config {
	if c.Workers == 0 {
		c.Workers = 7
	}
	if c.Interval == 0 {
		c.Interval = 3 * time.Second
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.Key == "" {
		c.Key = fmt.Sprintf("simulate-%d", time.Now().UnixNano())
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("workers must be at least 1, not %d", c.Workers)
	case c.Interval < time.Millisecond:
		return fmt.Errorf("interval must be at least 1ms, not %v", c.Interval)
	case c.Max < 0:
		return fmt.Errorf("max must not be negative, not %d", c.Max)
	case c.Duration <= 0:
		return fmt.Errorf("duration must be positive, not %v", c.Duration)
	}
	return nil
}

// Summary is the outcome of a simulation.
type Summary struct {
	Workers  int
	Interval time.Duration
	Max      int
	// Slop is the server's default slop for Interval: max(1 ms, interval/10).
	Slop time.Duration

	Calls        int // THROTTLE.ACQUIRE calls answered
	Grants       int // granted, now or reserved
	Reservations int // grants of a future slot (wait > 0)
	Denials      int
	Expired      int // granted, but the worker woke after the deadline
	Abandoned    int // granted, but the run ended or was interrupted before the slot
	Errors       int // calls that failed (cluster down...)
	Requests     int // fake_request calls

	// MinGap is the smallest gap between the local start times of
	// consecutive fake_request calls; MinSlotGap the smallest gap between
	// their slots in cluster time. Both are 0 with fewer than 2 requests.
	MinGap     time.Duration
	MinSlotGap time.Duration
	// Pass reports that the slots of the requests made are at least
	// Interval apart in cluster time (MinSlotGap >= Interval; vacuously
	// true with fewer than 2 requests): the throttle's guarantee. Every
	// request is made within its permit's window by construction (a
	// permit that expired before use is counted in Expired, not used).
	// MinGap is not part of the verdict: a worker uses its permit up to
	// Slop after the slot opens, measured from when its reply arrived, so
	// on a loaded machine two local calls can be closer than Interval -
	// Slop by the difference between their replies' delays.
	Pass bool
}

// request is one fake_request call.
type request struct {
	at     time.Time // local
	slot   time.Time // cluster time
	worker int
}

type sim struct {
	cfg Config
	c   *client.Client
	out io.Writer

	mu       sync.Mutex // guards out, sum and reqs
	sum      Summary
	reqs     []request
	logClock func() time.Time
}

// Run runs the simulation, writing the log and the summary to out. It
// returns when Duration has passed and every reservation held has been used,
// or when ctx ends (then with ctx's error, after printing the summary so
// far). A FAIL on spacing is reported
// in the Summary, not as an error.
func Run(ctx context.Context, cfg Config, out io.Writer) (Summary, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Summary{}, err
	}
	s := &sim{cfg: cfg, out: out, logClock: time.Now}
	ms := int64((cfg.Interval + time.Millisecond - 1) / time.Millisecond)
	s.sum = Summary{Workers: cfg.Workers, Interval: cfg.Interval, Max: cfg.Max,
		Slop: time.Duration(max(1, ms/10)) * time.Millisecond}

	s.printf("Simulating num_workers=%d with min_interval=%v, max_permits=%d\n", cfg.Workers, cfg.Interval, cfg.Max)
	addrs := cfg.Addrs
	if len(addrs) == 0 {
		node, err := embedded.Start(ctx, "simulate")
		if err != nil {
			return Summary{}, err
		}
		defer node.Close()
		srv := node.Server
		addrs = []string{srv.Addr()}
		s.printf("Using an embedded single-node throttledb server at %s (key %s)\n", srv.Addr(), cfg.Key)
	} else {
		s.printf("Using throttledb at %s (key %s)\n", strings.Join(addrs, ","), cfg.Key)
	}
	c, err := client.New(client.Options{Addrs: addrs, Password: cfg.Password, TLSConfig: cfg.TLSConfig})
	if err != nil {
		return Summary{}, err
	}
	defer c.Close()
	s.c = c

	end := time.Now().Add(cfg.Duration)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		s.printf("Starting task: %d\n", w)
		wg.Go(func() { s.worker(ctx, w, end) })
	}
	wg.Wait()
	sum := s.summary()
	if err := ctx.Err(); err != nil {
		s.printf("\nInterrupted: %v\n", err)
		s.printSummary(sum)
		return sum, err
	}
	s.printSummary(sum)
	return sum, nil
}

// worker loops until end: wait for a slot with client.Wait (acquire; on a
// denial sleep until the retry time and acquire again; sleep until the
// slot), then fake_request. Every reply Wait receives is logged and
// counted as it arrives.
func (s *sim) worker(ctx context.Context, w int, end time.Time) {
	for ctx.Err() == nil && time.Now().Before(end) {
		p, err := s.wait(ctx, w, end)
		switch {
		case err == nil:
			s.fakeRequest(w, p, time.Now())
		case errors.Is(err, client.ErrPermitExpired):
			s.count(func(sum *Summary) { sum.Expired++ })
			s.logf(w, "Permit expired before use (woke %v after its deadline)", time.Since(p.Deadline()))
		case p.Granted:
			// The run ended, or was interrupted, between the grant and
			// its slot: a slot Wait was given but did not use.
			s.count(func(sum *Summary) { sum.Abandoned++ })
			s.logf(w, "Permit abandoned: %v", err)
		case ctx.Err() != nil || !time.Now().Before(end):
			return
		default:
			// Already logged and counted as it arrived (reply). Pause
			// before trying again, until end at most.
			pause := time.NewTimer(min(s.cfg.Interval/10+time.Millisecond, time.Until(end)))
			select {
			case <-pause.C:
			case <-ctx.Done():
				pause.Stop()
			}
		}
	}
}

// wait is one client.Wait that gives up at end unless it already holds a
// slot: a reservation granted before the end is still used, as in the
// exercise's demo, but no slot is sought after it.
func (s *sim) wait(ctx context.Context, w int, end time.Time) (client.Permit, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	granted, stopped := false, false
	stop := time.AfterFunc(time.Until(end), func() {
		mu.Lock()
		defer mu.Unlock()
		if !granted {
			stopped = true
			cancel()
		}
	})
	defer stop.Stop()
	return s.c.Wait(wctx, s.cfg.Key, s.cfg.Interval, s.cfg.Max, client.OnReply(func(p client.Permit, err error) {
		mu.Lock()
		granted = granted || (err == nil && p.Granted && !stopped)
		mu.Unlock()
		if err != nil && wctx.Err() != nil {
			return // cut short by the end or an interrupt: no reply to count
		}
		s.reply(w, p, err)
	}))
}

// reply logs and counts one reply to THROTTLE.ACQUIRE.
func (s *sim) reply(w int, p client.Permit, err error) {
	if err != nil {
		s.count(func(sum *Summary) { sum.Errors++ })
		s.logf(w, "Acquire failed: %v", err)
		return
	}
	s.logf(w, "Received permit: %v", p)
	s.count(func(sum *Summary) {
		sum.Calls++
		switch {
		case !p.Granted:
			sum.Denials++
		case p.Wait > 0:
			sum.Grants++
			sum.Reservations++
		default:
			sum.Grants++
		}
	})
}

// fakeRequest stands for the call to the rate-limited API, made at now
// (when the permit was checked to be still valid).
func (s *sim) fakeRequest(w int, p client.Permit, now time.Time) {
	s.mu.Lock()
	s.reqs = append(s.reqs, request{at: now, slot: p.ValidAt, worker: w})
	s.sum.Requests++
	s.mu.Unlock()
	s.logf(w, "fake_request for %d", w)
}

func (s *sim) count(f func(*Summary)) {
	s.mu.Lock()
	f(&s.sum)
	s.mu.Unlock()
}

func (s *sim) summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := s.sum
	sum.Pass = true
	if len(s.reqs) < 2 {
		return sum
	}
	byTime := slices.Clone(s.reqs)
	slices.SortFunc(byTime, func(a, b request) int { return a.at.Compare(b.at) })
	bySlot := slices.Clone(s.reqs)
	slices.SortFunc(bySlot, func(a, b request) int { return a.slot.Compare(b.slot) })
	sum.MinGap, sum.MinSlotGap = time.Duration(1<<63-1), time.Duration(1<<63-1)
	for i := 1; i < len(byTime); i++ {
		sum.MinGap = min(sum.MinGap, byTime[i].at.Sub(byTime[i-1].at))
		sum.MinSlotGap = min(sum.MinSlotGap, bySlot[i].slot.Sub(bySlot[i-1].slot))
	}
	sum.Pass = sum.MinSlotGap >= sum.Interval
	return sum
}

func (s *sim) printSummary(sum Summary) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSummary: workers=%d interval=%v max_permits=%d duration=%v\n", sum.Workers, sum.Interval, sum.Max, s.cfg.Duration)
	fmt.Fprintf(&b, "  acquire calls:      %d\n", sum.Calls)
	fmt.Fprintf(&b, "  grants:             %d (%d immediate, %d reservations)\n", sum.Grants, sum.Grants-sum.Reservations, sum.Reservations)
	fmt.Fprintf(&b, "  denials:            %d\n", sum.Denials)
	fmt.Fprintf(&b, "  expired permits:    %d\n", sum.Expired)
	if sum.Abandoned > 0 {
		fmt.Fprintf(&b, "  abandoned permits:  %d (granted as the run ended or was interrupted, not used)\n", sum.Abandoned)
	}
	fmt.Fprintf(&b, "  errors:             %d\n", sum.Errors)
	fmt.Fprintf(&b, "  fake_request calls: %d\n", sum.Requests)
	verdict := "PASS"
	if !sum.Pass {
		verdict = "FAIL"
	}
	if sum.Requests < 2 {
		fmt.Fprintf(&b, "  spacing: %s (fewer than 2 requests: nothing to compare)\n", verdict)
	} else {
		fmt.Fprintf(&b, "  smallest gap between consecutive fake_request calls: %v local, %v between their slots (cluster time)\n",
			sum.MinGap.Round(100*time.Microsecond), sum.MinSlotGap)
		fmt.Fprintf(&b, "  spacing: %s (slots at least interval %v apart; each call made within its permit's slop of %v)\n",
			verdict, sum.Interval, sum.Slop)
	}
	s.printf("%s", b.String())
}

// logf writes a log line like the exercise's Python demo:
// "<worker> 2017-01-16 21:18:13,254 Received permit: ...".
func (s *sim) logf(w int, format string, args ...any) {
	ts := s.logClock().Format("2006-01-02 15:04:05,000")
	s.printf("%d %s %s\n", w, ts, fmt.Sprintf(format, args...))
}

func (s *sim) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.out, format, args...)
}
