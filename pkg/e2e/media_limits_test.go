package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// Issue 14, findings 6 and 7: range requests that made the gateway re-read an
// object per range, and media storage without bounds.

// natsOutBytes is what the embedded NATS server has sent to its clients so far:
// reading a media object from the object store costs its size in it.
func natsOutBytes(t *testing.T, n *testutil.Natter) int64 {
	t.Helper()
	v, err := n.NATS.Varz(nil)
	require.NoError(t, err)
	return v.OutBytes
}

func uploadOK(t *testing.T, n *testutil.Natter, user, name string, data []byte) uploaded {
	t.Helper()
	status, body := upload(t, n, user, name, data)
	require.Equal(t, http.StatusCreated, status, string(body))
	var up uploaded
	require.NoError(t, json.Unmarshal(body, &up))
	return up
}

// TestMediaRangeAttackCostsOnePass is the reported attack: 100 backward ranges on
// one large object in one request. The gateway sends the whole object instead,
// reading it once; a few ascending ranges are served as ranges, in one pass too.
func TestMediaRangeAttackCostsOnePass(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	const size = 8 << 20
	data := pngBytes(t, size)
	up := uploadOK(t, n, "alice", "big.png", data)

	specs := make([]string, 100)
	for i := range specs {
		end := size - 1 - i*(size/100)
		specs[i] = fmt.Sprintf("%d-%d", end-9, end)
	}
	for _, tc := range []struct {
		name   string
		header string
		status int
	}{
		{"100 backward ranges", "bytes=" + strings.Join(specs, ","), http.StatusOK},
		{"two backward ranges", "bytes=7000000-7000009,10-19", http.StatusOK},
		{"five ranges", "bytes=0-9,100-109,200-209,300-309,400-409", http.StatusOK},
		{"overlapping ranges", "bytes=0-999,500-1499", http.StatusOK},
		{"four ascending ranges", "bytes=10-19,3000000-3000009,6000000-6000009,-10", http.StatusPartialContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := natsOutBytes(t, n)
			resp, got := download(t, n, "alice", up.ID, map[string]string{"Range": tc.header})
			read := natsOutBytes(t, n) - before
			require.Equal(t, tc.status, resp.StatusCode)
			if tc.status == http.StatusOK {
				require.True(t, bytes.Equal(data, got), "the whole object")
			} else {
				require.Contains(t, resp.Header.Get("Content-Type"), "multipart/byteranges")
				for _, part := range [][]byte{data[10:20], data[3000000:3000010], data[6000000:6000010], data[size-10:]} {
					require.True(t, bytes.Contains(got, part))
				}
			}
			t.Logf("%s: NATS sent %d bytes for a %d-byte object", tc.name, read, size)
			require.Less(t, read, int64(size)*5/4, "the object was read once, not once per range")
		})
	}
}

func TestMediaUploadRate(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.Limits.UploadRate, cfg.Gateway.Limits.UploadBurst = never, 3
	n := testutil.StartNatter(t, cfg)
	before := mediaObjects(t, n)
	for i := range 3 {
		uploadOK(t, n, "mallory", fmt.Sprintf("f%d.png", i), pngBytes(t, 1000))
	}
	status, body := upload(t, n, "mallory", "f3.png", pngBytes(t, 1000))
	requireRefused(t, status, body, http.StatusTooManyRequests, protocol.CodeRateLimited)
	require.Equal(t, before+3, mediaObjects(t, n), "the refused upload stored nothing")
	uploadOK(t, n, "alice", "mine.png", pngBytes(t, 1000)) // alice has her own bucket
}

func TestMediaUserQuota(t *testing.T) {
	const quota = 200 << 10
	cfg := testutil.Config(t)
	cfg.Gateway.Media.UserQuota = quota
	n := testutil.StartNatter(t, cfg)

	uploadOK(t, n, "mallory", "a.png", pngBytes(t, 120<<10))
	status, body := upload(t, n, "mallory", "b.png", pngBytes(t, 120<<10))
	requireRefused(t, status, body, http.StatusInsufficientStorage, protocol.CodeQuotaExceeded)
	uploadOK(t, n, "mallory", "c.png", pngBytes(t, 60<<10)) // what is left is usable
	uploadOK(t, n, "alice", "d.png", pngBytes(t, 120<<10))  // alice has her own quota

	// Concurrent uploads cannot pass the quota together: of ten 50 KiB uploads
	// against an empty 200 KiB quota, exactly four are stored.
	before := mediaObjects(t, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	codes := map[int]int{}
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _ := upload(t, n, "carol", fmt.Sprintf("c%d.png", i), pngBytes(t, 50<<10))
			mu.Lock()
			codes[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusCreated: 4, http.StatusInsufficientStorage: 6}, codes)
	require.Equal(t, before+4, mediaObjects(t, n), "refused uploads left no object")
}

func TestMediaBucketSizeLimit(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.NATS.MediaMaxBytes = 1 << 20
	n := testutil.StartNatter(t, cfg)
	stored, full := 0, 0
	for i := range 8 {
		status, body := upload(t, n, fmt.Sprintf("user%d", i), "f.png", pngBytes(t, 200<<10))
		switch status {
		case http.StatusCreated:
			stored++
		default:
			requireRefused(t, status, body, http.StatusInsufficientStorage, protocol.CodeStorageFull)
			full++
		}
	}
	require.Positive(t, full, "uploads past the bucket's size are refused")
	require.LessOrEqual(t, stored, 5)
	st, err := n.JS.Stream(ctxT(t, 5*time.Second), "OBJ_"+natsutil.MediaBucket)
	require.NoError(t, err)
	require.LessOrEqual(t, st.CachedInfo().State.Bytes, uint64(1<<20))
}

// TestMediaUnsharedUploadsExpire: an upload no message shared within
// gateway.media-unshared-ttl is deleted and its bytes given back to the quota; a
// shared one stays.
func TestMediaUnsharedUploadsExpire(t *testing.T) {
	const quota = 200 << 10
	cfg := testutil.Config(t)
	cfg.Gateway.Media.UserQuota = quota
	cfg.Gateway.Media.UnsharedTTL = 2 * time.Second
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := n.Dial(t, "alice")

	unshared := uploadOK(t, n, "alice", "draft.png", pngBytes(t, 90<<10))
	shared := uploadOK(t, n, "alice", "sent.png", pngBytes(t, 90<<10))
	meta, _ := json.Marshal(protocol.MediaRef{MediaID: shared.ID})
	_, err := alice.SendFrame(ctxT(t, 5*time.Second), &protocol.Frame{Type: "send", ChatID: chat, Content: "look", MessageType: "image", Meta: meta})
	require.NoError(t, err)
	status, body := upload(t, n, "alice", "more.png", pngBytes(t, 90<<10))
	requireRefused(t, status, body, http.StatusInsufficientStorage, protocol.CodeQuotaExceeded)

	require.Eventually(t, func() bool {
		// A download that races the deletion may be cut short (EOF): not yet gone.
		resp := rawRequest(t, n, "GET", "/api/v1/media/"+unshared.ID, "alice", "", nil, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusNotFound
	}, 30*time.Second, 200*time.Millisecond, "the unshared upload expires")
	require.Eventually(t, func() bool {
		resp, _ := download(t, n, "bob", shared.ID, nil)
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "the shared one stays")

	// Its bytes are back in the quota; sharing it now is refused.
	uploadOK(t, n, "alice", "more.png", pngBytes(t, 90<<10))
	meta, _ = json.Marshal(protocol.MediaRef{MediaID: unshared.ID})
	_, err = alice.SendFrame(ctxT(t, 5*time.Second), &protocol.Frame{Type: "send", ChatID: chat, Content: "late", MessageType: "image", Meta: meta})
	require.Equal(t, protocol.CodeNotFound, errCode(t, err))
}

// TestMediaOpaqueBinaryIsAnAttachment: bytes nobody can identify (an encrypted
// attachment; an executable) are accepted and always served as a download.
func TestMediaOpaqueBinaryIsAnAttachment(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := n.Dial(t, "alice")
	cipher := make([]byte, 4096)
	_, err := rand.Read(cipher)
	require.NoError(t, err)
	cipher[0] = 0 // no signature can match
	for _, tc := range []struct {
		name, filename string
		data           []byte
	}{
		{"ciphertext", "secret.bin", cipher},
		{"executable named as an image", "tool.png", append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 600)...)},
		{"html named as binary", "page.bin", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == nil { // markup is still refused, whatever its name
				status, body := upload(t, n, "alice", tc.filename, []byte("<!DOCTYPE html><script>alert(1)</script>"))
				requireRefused(t, status, body, http.StatusUnsupportedMediaType, protocol.CodeBadRequest)
				return
			}
			up := uploadOK(t, n, "alice", tc.filename, tc.data)
			require.Equal(t, "application/octet-stream", up.ContentType)
			meta, _ := json.Marshal(protocol.MediaRef{MediaID: up.ID})
			_, err := alice.SendFrame(ctxT(t, 5*time.Second), &protocol.Frame{Type: "send", ChatID: chat, Content: "file", MessageType: "file", Meta: meta})
			require.NoError(t, err)
			var resp *http.Response
			var got []byte
			require.Eventually(t, func() bool { // once the message is sequenced
				resp, got = download(t, n, "bob", up.ID, nil)
				return resp.StatusCode == http.StatusOK
			}, 10*time.Second, 50*time.Millisecond)
			require.True(t, bytes.Equal(tc.data, got))
			require.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
			require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			require.True(t, strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;"), resp.Header.Get("Content-Disposition"))
			require.Contains(t, resp.Header.Get("Content-Security-Policy"), "sandbox")
		})
	}
}
