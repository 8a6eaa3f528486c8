package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/progressd/progressd/internal/loadtest"
)

// comparison is how `bench --scenario ingest|keepcurrent` runs: several
// runs of one scenario side by side, each against a fresh server unless
// --server is given, and the machine's floor beside them.
type comparison struct {
	serveArgs []string
	serverLog string
	via       string // one Via; empty: ingest all, keepcurrent its default
	floor     bool
	json      bool
}

// comparedRun is one run of a comparison.
type comparedRun struct {
	Label  string           `json:"label"`
	Result *loadtest.Result `json:"result"`
}

// comparisonResult is what --json prints for a comparison.
type comparisonResult struct {
	Scenario loadtest.Scenario `json:"scenario"`
	Runs     []comparedRun     `json:"runs"`
	Floor    *loadtest.Floor   `json:"floor,omitempty"`
}

func runComparison(ctx context.Context, w io.Writer, cfg loadtest.Config, o comparison) error {
	type plan struct {
		label string
		cfg   loadtest.Config
		args  []string
	}
	var plans []plan
	switch cfg.Scenario {
	case loadtest.Ingest:
		vias := loadtest.Vias
		if o.via != "" {
			vias = []loadtest.Via{loadtest.Via(o.via)}
		}
		for _, v := range vias {
			c := cfg
			c.Via = v
			plans = append(plans, plan{label: "via " + string(v), cfg: c, args: o.serveArgs})
		}
	case loadtest.KeepCurrent:
		// Both runs report the same way, so their ratio is delivery's.
		cfg.Via = loadtest.Via(cmp.Or(o.via, string(cfg.Scenario.DefaultVia())))
		if cfg.Server == "" {
			yard := append(append([]string{}, o.serveArgs...), "--min-write-interval=0")
			plans = append(plans, plan{label: "spacing 0 (every update written: the yardstick)", cfg: cfg, args: yard})
		}
		label := "server defaults"
		if len(o.serveArgs) > 0 {
			label = strings.Join(o.serveArgs, " ")
		}
		plans = append(plans, plan{label: label, cfg: cfg, args: o.serveArgs})
	}
	for _, p := range plans { // every setting checked before anything starts
		check := p.cfg
		if check.Server == "" {
			check.Server = "http://127.0.0.1:1"
		}
		if err := check.Validate(); err != nil {
			return err
		}
	}
	out := comparisonResult{Scenario: cfg.Scenario}
	var problems []string
	for _, p := range plans {
		cfg.Log.Info("run", "label", p.label)
		args := p.args
		if p.cfg.Server != "" {
			args = nil
		}
		res, err := runBench(ctx, p.cfg, args, o.serverLog)
		if err != nil {
			return fmt.Errorf("%s: %w", p.label, err)
		}
		out.Runs = append(out.Runs, comparedRun{Label: p.label, Result: res})
		if !res.OK {
			problems = append(problems, p.label+": "+strings.Join(res.Problems(), "; "))
		}
	}
	if o.floor {
		f, err := measureFloor(ctx, cfg)
		if err != nil {
			return fmt.Errorf("the machine's floor: %w", err)
		}
		out.Floor = &f
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for _, r := range out.Runs {
			fmt.Fprintf(w, "\n== %s\n", r.Label)
			printBenchResult(w, r.Result)
		}
		printComparison(w, out)
	}
	if len(problems) > 0 {
		return &exitError{code: 1, err: errors.New("bench: " + strings.Join(problems, "; "))}
	}
	return nil
}

// measureFloor measures the floor of cfg's scenario with this program as
// the other process.
func measureFloor(ctx context.Context, cfg loadtest.Config) (loadtest.Floor, error) {
	exe, err := os.Executable()
	if err != nil {
		return loadtest.Floor{}, err
	}
	peer := loadtest.ExecFloorPeer(exe, "bench", "--floor-peer")
	cfg.Log.Info("measuring the machine's floor")
	if cfg.Scenario == loadtest.Ingest {
		return loadtest.FloorHTTP(ctx, peer, 20_000)
	}
	rate := max(int(cfg.Rate), 1)
	return loadtest.FloorFanout(ctx, peer, cfg.Clients, rate, 3*rate, nil)
}

// printComparison prints the runs' key figures side by side, against the
// first run and the floor.
func printComparison(w io.Writer, c comparisonResult) {
	if len(c.Runs) == 0 {
		fmt.Fprintf(w, "\n== %s: side by side\n", c.Scenario)
		return
	}
	reporting := ""
	if c.Scenario == loadtest.KeepCurrent {
		reporting = fmt.Sprintf(", reports via %s in every run", c.Runs[0].Result.Via)
	}
	fmt.Fprintf(w, "\n== %s: side by side%s\n", c.Scenario, reporting)
	first := c.Runs[0].Result.Server
	for _, r := range c.Runs {
		res, s := r.Result, r.Result.Server
		switch c.Scenario {
		case loadtest.Ingest:
			line := fmt.Sprintf("  %-8s %s reports/s", res.Via, benchComma(uint64(res.ReportsPerSecond)))
			if s.Measured {
				line += fmt.Sprintf(", server CPU %.2f s per 100k reports", s.CPUSecondsPer100kReports)
				if first.CPUSecondsPer100kReports > 0 {
					line += fmt.Sprintf(" (%.2f× %s)", s.CPUSecondsPer100kReports/first.CPUSecondsPer100kReports, c.Runs[0].Result.Via)
				}
			}
			fmt.Fprintln(w, line)
		case loadtest.KeepCurrent:
			st := res.Staleness
			line := fmt.Sprintf("  %s:\n      staleness p50 %s p99 %s max %s; %s deliveries; final snapshot missed by %d",
				r.Label, benchDuration(st.P50), benchDuration(st.P99), benchDuration(st.Max), benchComma(res.Delivered), res.MissedFinal)
			if s.Measured {
				line += fmt.Sprintf("; server CPU %.2f s", s.CPUSeconds)
				if first.CPUSeconds > 0 {
					line += fmt.Sprintf(" (%.2f× the first)", s.CPUSeconds/first.CPUSeconds)
				}
			}
			fmt.Fprintln(w, line)
		}
	}
	if f := c.Floor; f != nil {
		fmt.Fprintf(w, "  floor    %s: server CPU %.2f s per 100k", f.What, f.ServerPer100k)
		if f.RoundP99 > 0 {
			fmt.Fprintf(w, ", reader %.2f s per 100k, one round of writes p50 %s p99 %s", f.PeerPer100k, benchDuration(f.RoundP50), benchDuration(f.RoundP99))
		}
		fmt.Fprintln(w)
	}
}
