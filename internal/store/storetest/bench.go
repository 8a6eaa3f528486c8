package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// Sizes of the project-list benchmark (issue 12): 100,000 jobs in 1,000
// projects, owned by 37 users (coprime with 1,000, so every user has jobs
// in every project: 37,000 project-and-owner rows).
const (
	BenchJobs     = 100_000
	BenchProjects = 1_000
	BenchOwners   = 37
)

// BenchmarkProjects measures GET /api/v1/projects' read on s, which holds
// the jobs Bench* describe: the first page and the tenth (by cursor) for
// an admin (all projects) and for one user. Each reports its p99.
func BenchmarkProjects(b *testing.B, s store.Store) {
	for _, tc := range []struct {
		name  string
		owner string
		page  int
	}{
		{"admin/first", "", 1}, {"admin/tenth", "", 10},
		{"user/first", "u7", 1}, {"user/tenth", "u7", 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			q := progress.ProjectQuery{Owner: tc.owner, Limit: 50}
			for range tc.page - 1 {
				_, next, err := s.Projects(b.Context(), q)
				if err != nil || next == "" {
					b.Fatalf("paging to page %d: %v", tc.page, err)
				}
				q.Cursor = next
			}
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				page, _, err := s.Projects(b.Context(), q)
				lat = append(lat, time.Since(start))
				if err != nil || len(page) != 50 {
					b.Fatalf("Projects: %d, %v", len(page), err)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
