package bench

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

// TestPlanDirectPairs: direct chats beyond users/2 are distinct pairs, every user
// in as many chats as any other (within one), up to maxDirectChats.
func TestPlanDirectPairs(t *testing.T) {
	tests := []struct{ users, chats int }{
		{10, 5},  // the classic layout: disjoint pairs
		{10, 6},  // one more: pairs layout
		{10, 40}, // every pair at distance 1..4
		{11, 55}, // odd: every pair
		{2000, 100_000},
	}
	for _, tc := range tests {
		t.Run("", func(t *testing.T) {
			require.LessOrEqual(t, tc.chats, maxDirectChats(tc.users))
			p := newPlan("brun1", tc.users, tc.users, tc.chats, 2, 0)
			require.Len(t, p.Chats, tc.chats)
			seen := map[[2]int]bool{}
			degree := make([]int, tc.users)
			for _, c := range p.Chats {
				a, b := c.Members[0], c.Members[1]
				require.NotEqual(t, a, b)
				if a > b {
					a, b = b, a
				}
				require.False(t, seen[[2]int{a, b}], "pair %d-%d twice", a, b)
				seen[[2]int{a, b}] = true
				degree[a]++
				degree[b]++
			}
			lo, hi := degree[0], degree[0]
			for _, d := range degree {
				lo, hi = min(lo, d), max(hi, d)
			}
			require.LessOrEqual(t, hi-lo, 2, "chats spread evenly over users")
		})
	}
	require.Equal(t, 40, maxDirectChats(10), "distance 5 would repeat pairs")
	require.Equal(t, 55, maxDirectChats(11))
	require.Equal(t, 1, maxDirectChats(2))
	require.Zero(t, maxDirectChats(1))
}

func TestCreateChatsInStore(t *testing.T) {
	st, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "natter.db"))
	require.NoError(t, err)
	defer st.Close()
	p := newPlan("brun1", 6, 6, 12, 2, 0)
	var ticks []int
	require.NoError(t, createChatsInStore(t.Context(), st, p, 4, func(n int) { ticks = append(ticks, n) }))
	require.Len(t, p.Chats, 12, "distinct pairs: nothing deduplicated")
	for _, c := range p.Chats {
		a, b := p.Users[c.Members[0]], p.Users[c.Members[1]]
		require.Equal(t, ids.Direct(a, b), c.ID, "the ID the gateway gives a direct chat")
		got, err := st.GetChat(t.Context(), c.ID)
		require.NoError(t, err)
		require.Equal(t, store.KindDirect, got.Kind)
		ms, err := st.Members(t.Context(), c.ID)
		require.NoError(t, err)
		require.Len(t, ms, 2)
	}
	require.Empty(t, ticks, "progress every 10,000 chats")

	// Again: the chats exist, creation is idempotent.
	require.NoError(t, createChatsInStore(t.Context(), st, p, 4, nil))

	g := newPlan("brun2", 6, 6, 1, 3, 0)
	require.Error(t, createChatsInStore(t.Context(), st, g, 2, nil), "groups go through REST")
}

func TestResolveScaleFlags(t *testing.T) {
	ok := Config{Mode: "load", Embedded: true, Conns: 100, Chats: 4950, Create: "store", Rate: -1, Duration: time.Second, Size: 10}
	require.Error(t, ok.Resolve(), "100 users have 100·49 = 4,900 pairs for direct chats")
}

func TestResolveScaleErrors(t *testing.T) {
	base := func() Config {
		return Config{Mode: "load", Embedded: true, Conns: 100, Rate: -1, Duration: time.Second, Size: 10}
	}
	good := base()
	good.Chats, good.Create = 4900, "store"
	require.NoError(t, good.Resolve())
	require.Equal(t, "store", good.Create)

	def := base()
	require.NoError(t, def.Resolve())
	require.Equal(t, "rest", def.Create, "the default")

	for name, mut := range map[string]func(*Config){
		"more chats than pairs": func(c *Config) { c.Chats = 4901 },
		"unknown create":        func(c *Config) { c.Create = "nats" },
		"store for groups":      func(c *Config) { c.Create, c.ChatSize = "store", 3 },
		"store for fanout":      func(c *Config) { c.Create, c.Mode, c.Members = "store", "fanout", 10 },
		"store without a file":  func(c *Config) { c.Create, c.Embedded, c.URLs = "store", false, []string{"ws://x/ws"} },
		"bad pid":               func(c *Config) { c.GatewayPIDs = []int{1, -3} },
		"existing without run":  func(c *Config) { c.Create = "existing" },
		"bad run id":            func(c *Config) { c.RunID = "x1" },
	} {
		c := base()
		mut(&c)
		require.Error(t, c.Resolve(), name)
	}
}

func TestResolveReuseRun(t *testing.T) {
	c := Config{Mode: "load", Embedded: true, Conns: 100, Chats: 1000, Create: "existing", RunID: "babc12", Rate: -1, Duration: time.Second, Size: 10}
	require.NoError(t, c.Resolve())
	for id, ok := range map[string]bool{"babc12": true, "b00000": true, "babc1": false, "xabc12": false, "bABC12": false, "babc12x": false} {
		require.Equal(t, ok, validRunID(id), id)
	}
	require.True(t, validRunID(newRunID()))
}

func TestGatewayPIDFlag(t *testing.T) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c Config
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--gateway-pid", "12, 34,56", "--metrics-url", "http://a/metrics,http://b/metrics"}))
	require.Equal(t, []int{12, 34, 56}, c.GatewayPIDs)
	require.Equal(t, "12,34,56", fs.Lookup("gateway-pid").Value.String())
	require.Len(t, c.MetricsURLs, 2)
	require.NoError(t, fs.Parse([]string{"--gateway-pid", "7"}))
	require.Equal(t, []int{7}, c.GatewayPIDs, "a later flag replaces the list")
	require.Error(t, fs.Parse([]string{"--gateway-pid", "12,x"}))
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 1234
go_memstats_heap_inuse_bytes 5.24288e+07
go_gc_duration_seconds{quantile="0.5"} 0.001
process_resident_memory_bytes 1.048576e+08
natter_other 9
`
	m, err := parseMetrics(strings.NewReader(text), "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "absent")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"go_goroutines": 1234, "go_memstats_heap_inuse_bytes": 52428800, "process_resident_memory_bytes": 104857600}, m)
}

func TestConnsOfURL(t *testing.T) {
	total := 0
	for k := 0; k < 3; k++ {
		total += connsOfURL(50_000, 3, k)
	}
	require.Equal(t, 50_000, total)
	require.Equal(t, 16_667, connsOfURL(50_000, 3, 0))
	require.Equal(t, 16_666, connsOfURL(50_000, 3, 2))
}
