package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// smallDisk mounts a tmpfs of size bytes on a new directory and returns it. Only
// root can mount: any other user skips, saying so (CI runs as root).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	d := t.TempDir()
	if err := syscall.Mount("tmpfs", d, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("a disk-full test needs a size-limited filesystem: mounting a tmpfs failed (%v; needs root)", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(d, syscall.MNT_DETACH) })
	return d
}

// fillDisk writes path until its filesystem has no space left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				require.True(t, errors.Is(err, syscall.ENOSPC), "filling the disk: %v", err)
				break
			}
		}
	}
}

// readyz returns the admin server's /readyz status and body.
func readyz(t *testing.T, n *testutil.Natter) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get("http://" + n.AdminAddr().String() + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var body struct {
		Reasons map[string]string `json:"reasons"`
	}
	require.NoError(t, json.Unmarshal(b, &body), string(b))
	return resp.StatusCode, body.Reasons
}

// TestDiskFull: with the data directory on a small filesystem that fills up, sends
// fail at once with storage_full (not a timeout), /readyz turns unready naming the
// full disk, and once space is freed Natter recovers by itself: /readyz is ready
// again, sends are stored, the refused ones can be resent with the same
// messageId, and every acknowledged message is in history exactly once, in order.
func TestDiskFull(t *testing.T) {
	dir := smallDisk(t, 48<<20)
	old := natsutil.StoragePollInterval
	natsutil.StoragePollInterval = 200 * time.Millisecond
	t.Cleanup(func() { natsutil.StoragePollInterval = old })

	cfg := testutil.Config(t)
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.NATS.Sync = "always"
	// JetStream may store 75% of the disk's free space (36 MB here) and refuses a
	// bucket cap above it: the default media cap (10 GiB) cannot start on this disk.
	cfg.NATS.MediaMaxBytes = 4 << 20
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice := n.Dial(t, "alice")

	var acked []string // in the order alice got their acks
	send := func(id string) error {
		_, err := alice.Send(ctxT(t, 15*time.Second), chat, id, "hello "+id)
		if err == nil {
			acked = append(acked, id)
		}
		return err
	}
	for i := range 20 {
		require.NoError(t, send(fmt.Sprintf("before-%02d", i)))
	}

	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler)
	var refused []string
	var pe *protocol.Error
	for i := 0; len(refused) < 5; i++ {
		require.Less(t, i, 500, "sends kept succeeding on a full disk")
		id := fmt.Sprintf("full-%03d", i)
		start := time.Now()
		err := send(id)
		if err == nil {
			require.Empty(t, refused, "a send was stored after one was refused for a full disk")
			continue
		}
		require.ErrorAs(t, err, &pe)
		require.Equal(t, protocol.CodeStorageFull, pe.Code, "refused send %s: %v", id, err)
		t.Logf("send %s refused with %s after %s", id, pe.Code, time.Since(start).Round(time.Millisecond))
		refused = append(refused, id)
	}
	status, reasons := readyz(t, n)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, reasons["jetstream"], "no space left on device", reasons)

	require.NoError(t, os.Remove(filler))
	require.Eventually(t, func() bool {
		status, _ := readyz(t, n)
		return status == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "ready again once the disk has space")
	for _, id := range refused { // the client's duty: resend with the same messageId
		require.NoError(t, send(id))
	}
	for i := range 20 {
		require.NoError(t, send(fmt.Sprintf("after-%02d", i)))
	}

	// Every acknowledged message is in history once, with no gap; "before" ones
	// in their order ahead of everything sent later, and "after" ones last in
	// their order.
	var got []string
	var seq uint64
	require.Eventually(t, func() bool { // acked is stored in NATTER_IN; sequencing follows
		p := history(t, n, "bob", chat, "?limit=200")
		got, seq = got[:0], 0
		for i := len(p.Messages) - 1; i >= 0; i-- {
			m := p.Messages[i]
			require.Equal(t, seq+1, m.Seq, "no gap")
			seq = m.Seq
			if m.SenderID == "alice" && m.MessageType != "system" {
				got = append(got, m.MessageID)
			}
		}
		return len(got) >= len(acked)
	}, 30*time.Second, 50*time.Millisecond, "every acknowledged message is sequenced")
	require.ElementsMatch(t, acked, got)
	require.Equal(t, acked[:20], got[:20])
	require.Equal(t, acked[len(acked)-20:], got[len(got)-20:])
	last, err := n.Store.LastSeq(ctxT(t, time.Second), chat)
	require.NoError(t, err)
	t.Logf("store holds up to seq %d of %d", last, seq)
	require.Eventually(t, func() bool {
		last, err := n.Store.LastSeq(ctxT(t, time.Second), chat)
		return err == nil && last == seq
	}, 60*time.Second, 100*time.Millisecond, "the persister catches up")
}
