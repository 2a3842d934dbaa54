package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// BenchmarkSQLitePersist measures what the persister's store write costs the
// machine per message, in the shape `natter bench --conns 2000` gives it: 1,000
// direct chats that already hold history (20 messages each), one-line texts from
// both members, and the batch sizes the persister writes (a light load gives it a
// few dozen messages per commit, a lagging one up to persister.batch, 2,000).
// cpu-µs/msg is the process's user+system CPU time per message (getrusage), which,
// unlike ns/op, does not depend on how long the disk takes to fsync: on a shared
// machine it is the figure to compare. written-B/msg is the bytes the process wrote
// to files per message (/proc/self/io wchar: WAL frames and checkpoint copies),
// which does not depend on the machine's load at all. Run with
//
//	go test -run '^$' -bench SQLitePersist -benchmem -count 3 ./pkg/store/
func BenchmarkSQLitePersist(b *testing.B) {
	const chats, history = 1000, 20
	for _, batchSize := range []int{32, 256, 500, 2000} {
		b.Run(fmt.Sprintf("batch=%d", batchSize), func(b *testing.B) {
			// A context that can end, as the persister's does: the driver treats
			// such statements differently (noInterrupt).
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			seq := make([]uint64, chats)
			next := 0 // the chat of the next message: round robin, as many senders give
			fill := func(batch []protocol.Message) {
				for i := range batch {
					c := next % chats
					next++
					seq[c]++
					sender := "u" + fmt.Sprint(2*c+int(seq[c]%2))
					batch[i] = protocol.Message{ChatID: fmt.Sprintf("chat-%d", c), Seq: seq[c],
						MessageID: fmt.Sprintf("m-%d-%d", c, seq[c]), SenderID: sender,
						Content:     fmt.Sprintf("bench message %d from %s, about the weekly deployment", seq[c], sender),
						MessageType: protocol.TypeText, Timestamp: time.Now().UnixMilli()}
				}
			}
			for c := 0; c < chats; c++ {
				id := fmt.Sprintf("chat-%d", c)
				if _, _, err := s.CreateChat(ctx, Chat{ID: id, Kind: KindDirect, CreatedBy: fmt.Sprint("u", 2*c), CreatedAt: time.Now()},
					[]Member{{ChatID: id, UserID: fmt.Sprint("u", 2*c), Role: RoleMember}, {ChatID: id, UserID: fmt.Sprint("u", 2*c+1), Role: RoleMember}}); err != nil {
					b.Fatal(err)
				}
			}
			pre := make([]protocol.Message, 1000)
			for range chats * history / len(pre) {
				fill(pre)
				if err := s.AppendMessages(ctx, pre); err != nil {
					b.Fatal(err)
				}
			}
			batch := make([]protocol.Message, batchSize)
			cpu0, w0 := cpuTime(b), bytesWritten(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				fill(batch)
				if err := s.AppendMessages(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			n := float64(b.N * batchSize)
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/n, "cpu-µs/msg")
			b.ReportMetric(float64(bytesWritten(b)-w0)/n, "written-B/msg")
			b.ReportMetric(n/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// bytesWritten is what the process has written so far (wchar of /proc/self/io:
// write and pwrite calls, to any file).
func bytesWritten(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no wchar in /proc/self/io")
	return 0
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
