package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// explain returns the EXPLAIN QUERY PLAN of q, one line per step.
func explain(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	n := strings.Count(q, "?")
	rows, err := db.Query(`EXPLAIN QUERY PLAN `+q, make([]any, n)...)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		out = append(out, detail)
	}
	require.NoError(t, rows.Err())
	return out
}

// fullScan matches a plan step that reads a whole table or index ("SCAN m" or
// "SCAN m USING COVERING INDEX ..."), as opposed to "SEARCH ... USING ... (a=?)".
var fullScan = regexp.MustCompile(`^SCAN `)

// valuesScan matches the scan of a VALUES list of parameters ("SCAN 8-ROW VALUES CLAUSE").
var valuesScan = regexp.MustCompile(`^SCAN \d+-ROW VALUES CLAUSE$`)

// TestSQLiteReadPlans checks that no hot read statement scans a table or index: each
// must search by key, whatever the store's size (these run per message, per
// connection or per notification).
func TestSQLiteReadPlans(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "plans.db"))
	require.NoError(t, err)
	defer s.Close()
	fillReadBench(t, s, 2000)
	_, err = s.w.ExecContext(ctx, `ANALYZE`) // plans with statistics, as a long-lived store may have
	require.NoError(t, err)
	for _, p := range s.rd.queries() {
		plan := explain(t, s.r, p.q)
		t.Logf("%s\n  %s", strings.Join(strings.Fields(p.q), " ")[:60], strings.Join(plan, "\n  "))
		sub := map[string]bool{} // subquery results: scanning one reads only its rows
		for _, step := range plan {
			if name, ok := strings.CutPrefix(step, "CO-ROUTINE "); ok {
				sub[name] = true
			}
			if name, ok := strings.CutPrefix(step, "MATERIALIZE "); ok {
				sub[name] = true
			}
		}
		for _, step := range plan {
			// A SELECT without FROM reads no table; a VALUES list (MessageSeqs' keys)
			// reads only its own rows.
			if fullScan.MatchString(step) && !sub[strings.Fields(step)[1]] && step != "SCAN CONSTANT ROW" && !valuesScan.MatchString(step) {
				t.Errorf("full scan in the plan of %s: %v", p.q, plan)
			}
		}
	}
}
