package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

type uploaded struct {
	ID          string `json:"id"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Name        string `json:"name"`
}

// multipartBody builds a form with the file part named field, whose
// Content-Disposition carries filename exactly as given (raw, so hostile names reach
// the server unescaped), plus an ignored chatId field first as the web chat sends.
func multipartBody(t *testing.T, field, filename string, data []byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("chatId", "ignored"))
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename="%s"`, field, filename))
	h.Set("Content-Type", "application/octet-stream")
	pw, err := mw.CreatePart(h)
	require.NoError(t, err)
	_, err = pw.Write(data)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), buf.Bytes()
}

// rawRequest makes a request with a given content type and body as user.
func rawRequest(t *testing.T, n *testutil.Natter, method, path, user, ctype string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, n.HTTPURL()+path, bytes.NewReader(body))
	require.NoError(t, err)
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+n.Token(t, user))
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAllBody(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return b
}

func upload(t *testing.T, n *testutil.Natter, user, filename string, data []byte) (int, []byte) {
	t.Helper()
	ct, body := multipartBody(t, "file", filename, data)
	resp := rawRequest(t, n, "POST", "/api/v1/media", user, ct, body, nil)
	return resp.StatusCode, readAllBody(t, resp)
}

func download(t *testing.T, n *testutil.Natter, user, id string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	resp := rawRequest(t, n, "GET", "/api/v1/media/"+id, user, "", nil, hdr)
	return resp, readAllBody(t, resp)
}

// pngBytes returns size bytes that sniff as a PNG: the signature, then noise.
func pngBytes(t *testing.T, size int) []byte {
	b := make([]byte, size)
	_, err := rand.Read(b)
	require.NoError(t, err)
	copy(b, "\x89PNG\r\n\x1a\n")
	return b
}

// mediaObjects counts the objects in the media bucket.
func mediaObjects(t *testing.T, n *testutil.Natter) int {
	t.Helper()
	obs, err := n.JS.ObjectStore(ctxT(t, 5*time.Second), natsutil.MediaBucket)
	require.NoError(t, err)
	list, err := obs.List(ctxT(t, 5*time.Second))
	if err == jetstream.ErrNoObjectsFound {
		return 0
	}
	require.NoError(t, err)
	return len(list)
}

func TestMediaShareAndDownload(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	other := n.CreateChat(t, "bob", "direct", "", "carol")
	alice, bob := n.Dial(t, "alice"), n.Dial(t, "bob")
	data := pngBytes(t, 300<<10) // several object-store chunks
	sum := sha256.Sum256(data)

	status, body := upload(t, n, "alice", "holiday photo.png", data)
	require.Equal(t, http.StatusCreated, status, string(body))
	var up uploaded
	require.NoError(t, json.Unmarshal(body, &up))
	require.Equal(t, uploaded{ID: up.ID, ContentType: "image/png", Size: int64(len(data)),
		SHA256: hex.EncodeToString(sum[:]), Name: "holiday photo.png"}, up)

	// The uploader reads it at once; a member of a chat it is not shared in may not.
	resp, got := download(t, n, "alice", up.ID, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, bytes.Equal(data, got), "the uploader downloads identical bytes")
	resp, got = download(t, n, "bob", up.ID, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.False(t, bytes.Contains(got, data[8:64]), "not the bytes")

	// Share it: an image message referencing it.
	meta, _ := json.Marshal(protocol.MediaRef{MediaID: up.ID, Name: up.Name, Size: up.Size, ContentType: up.ContentType})
	ack, err := alice.SendFrame(ctxT(t, 5*time.Second), &protocol.Frame{Type: "send", ChatID: chat, Content: "look", MessageType: "image", Meta: meta})
	require.NoError(t, err)
	m := next(t, bob, protocol.FrameMessage, 5*time.Second)
	require.Equal(t, "image", m.MessageType)
	var ref protocol.MediaRef
	require.NoError(t, json.Unmarshal(m.Meta, &ref))
	require.Equal(t, up.ID, ref.MediaID)

	resp, got = download(t, n, "bob", up.ID, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(got))
	require.True(t, bytes.Equal(data, got), "a member downloads identical bytes")
	require.Equal(t, "image/png", resp.Header.Get("Content-Type"))
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "sandbox")
	require.Equal(t, `inline; filename="holiday photo.png"`, resp.Header.Get("Content-Disposition"))
	require.Equal(t, "bytes", resp.Header.Get("Accept-Ranges"))
	require.Equal(t, `"`+up.SHA256+`"`, resp.Header.Get("ETag"))

	// Range requests: a slice in the middle (past the first chunk), the tail, two ranges.
	resp, got = download(t, n, "bob", up.ID, map[string]string{"Range": "bytes=200000-200099"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, data[200000:200100], got)
	require.Equal(t, fmt.Sprintf("bytes 200000-200099/%d", len(data)), resp.Header.Get("Content-Range"))
	resp, got = download(t, n, "bob", up.ID, map[string]string{"Range": "bytes=-10"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, data[len(data)-10:], got)
	resp, got = download(t, n, "bob", up.ID, map[string]string{"Range": "bytes=10-19,150000-150009"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "multipart/byteranges")
	require.True(t, bytes.Contains(got, data[150000:150010]) && bytes.Contains(got, data[10:20]))
	// Ranges out of order would re-read the object: the whole of it is sent instead
	// (media_limits_test.go has the attack).
	resp, got = download(t, n, "bob", up.ID, map[string]string{"Range": "bytes=150000-150009,10-19"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, bytes.Equal(data, got))
	resp, _ = download(t, n, "bob", up.ID, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(data)+5)})
	require.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.StatusCode)
	resp, got = download(t, n, "bob", up.ID, map[string]string{"If-None-Match": `"` + up.SHA256 + `"`})
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
	require.Empty(t, got)

	// Others: a non-member gets 403 and no bytes; bob may not re-share alice's upload.
	resp, got = download(t, n, "mallory", up.ID, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.False(t, bytes.Contains(got, data[8:64]))
	_, err = bob.SendFrame(ctxT(t, 5*time.Second), &protocol.Frame{Type: "send", ChatID: other, Content: "fwd", MessageType: "image", Meta: meta})
	require.Equal(t, protocol.CodeForbidden, errCode(t, err), "only the uploader shares")
	resp, _ = download(t, n, "carol", up.ID, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// A PDF is served as an attachment, never inline.
	status, body = upload(t, n, "bob", "report.pdf", []byte("%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"))
	require.Equal(t, http.StatusCreated, status, string(body))
	var pdf uploaded
	require.NoError(t, json.Unmarshal(body, &pdf))
	require.Equal(t, "application/pdf", pdf.ContentType)
	resp, _ = download(t, n, "bob", pdf.ID, nil)
	require.Equal(t, `attachment; filename=report.pdf`, resp.Header.Get("Content-Disposition"))

	// Deleting the message that shared it withdraws access (the uploader keeps it);
	// so does leaving the chat.
	_, err = alice.Delete(ctxT(t, 5*time.Second), chat, ack.MessageID)
	require.NoError(t, err)
	next(t, bob, protocol.FrameMessage, 5*time.Second)
	resp, _ = download(t, n, "bob", up.ID, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = download(t, n, "alice", up.ID, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = alice.SendFrame(ctxT(t, 5*time.Second), &protocol.Frame{Type: "send", ChatID: chat, Content: "again", MessageType: "image", Meta: meta})
	require.NoError(t, err)
	next(t, bob, protocol.FrameMessage, 5*time.Second)
	resp, _ = download(t, n, "bob", up.ID, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	status, body = call(t, n, "DELETE", "/api/v1/chats/"+chat+"/members/bob", "alice", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	resp, _ = download(t, n, "bob", up.ID, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "a removed member loses access")
}

func TestMediaRefusals(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Gateway.Media.MaxBytes = 64 << 10
	n := testutil.StartNatter(t, cfg)
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := n.Dial(t, "alice")
	before := mediaObjects(t, n)

	for _, tc := range []struct {
		name     string
		user     string
		filename string
		data     []byte
		status   int
		code     protocol.Code
	}{
		{"over the limit", "alice", "big.png", pngBytes(t, 64<<10+1), 413, protocol.CodeTooLarge},
		{"far over the limit", "alice", "huge.png", pngBytes(t, 1<<20), 413, protocol.CodeTooLarge},
		{"html", "alice", "page.png", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), 415, protocol.CodeBadRequest},
		{"xml", "alice", "x.svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), 415, protocol.CodeBadRequest},
		{"traversal", "alice", "../../etc/passwd", []byte("root:x:0:0"), 400, protocol.CodeBadRequest},
		{"traversal, windows", "alice", `..\\..\\boot.ini`, []byte("text"), 400, protocol.CodeBadRequest},
		{"absolute path", "alice", "/etc/passwd", []byte("text"), 400, protocol.CodeBadRequest},
		{"dot dot", "alice", "..", []byte("text"), 400, protocol.CodeBadRequest},
		{"control character", "alice", "a\x01b.txt", []byte("text"), 400, protocol.CodeBadRequest},
		{"bidi override", "alice", "photo\u202egnp.exe", []byte("text"), 400, protocol.CodeBadRequest},
		{"empty file", "alice", "empty.txt", nil, 400, protocol.CodeBadRequest},
		{"no token", "", "a.txt", []byte("text"), 401, protocol.CodeUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := upload(t, n, tc.user, tc.filename, tc.data)
			requireRefused(t, status, body, tc.status, tc.code)
		})
	}
	t.Run("not multipart", func(t *testing.T) {
		resp := rawRequest(t, n, "POST", "/api/v1/media", "alice", "image/png", pngBytes(t, 100), nil)
		requireRefused(t, resp.StatusCode, readAllBody(t, resp), 400, protocol.CodeBadRequest)
	})
	t.Run("no file field", func(t *testing.T) {
		ct, body := multipartBody(t, "attachment", "a.txt", []byte("text"))
		resp := rawRequest(t, n, "POST", "/api/v1/media", "alice", ct, body, nil)
		requireRefused(t, resp.StatusCode, readAllBody(t, resp), 400, protocol.CodeBadRequest)
	})
	t.Run("malformed multipart", func(t *testing.T) {
		resp := rawRequest(t, n, "POST", "/api/v1/media", "alice", "multipart/form-data; boundary=xyz",
			[]byte("--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello"), nil)
		requireRefused(t, resp.StatusCode, readAllBody(t, resp), 400, protocol.CodeBadRequest)
	})
	require.Equal(t, before, mediaObjects(t, n), "no refused upload left an object")

	// A long name is shortened, keeping its extension.
	status, body := upload(t, n, "alice", strings.Repeat("n", 300)+".txt", []byte("plain text"))
	require.Equal(t, http.StatusCreated, status, string(body))
	var up uploaded
	require.NoError(t, json.Unmarshal(body, &up))
	require.Len(t, up.Name, 200)
	require.True(t, strings.HasSuffix(up.Name, ".txt"))
	require.Equal(t, "text/plain; charset=utf-8", up.ContentType)

	// Downloads: unknown and invalid IDs.
	resp, _ := download(t, n, "alice", "nosuchmedia", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, body = download(t, n, "alice", "a.b", nil)
	requireRefused(t, resp.StatusCode, body, 400, protocol.CodeInvalidID)
	resp, _ = download(t, n, "", up.ID, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Messages referencing media: an image needs a mediaId, which must exist.
	for _, tc := range []struct {
		name string
		f    *protocol.Frame
		code protocol.Code
	}{
		{"image without media", &protocol.Frame{Type: "send", ChatID: chat, Content: "x", MessageType: "image"}, protocol.CodeBadRequest},
		{"unknown media", &protocol.Frame{Type: "send", ChatID: chat, Content: "x", MessageType: "file", Meta: json.RawMessage(`{"mediaId":"nosuchmedia"}`)}, protocol.CodeNotFound},
		{"invalid media id", &protocol.Frame{Type: "send", ChatID: chat, Content: "x", MessageType: "file", Meta: json.RawMessage(`{"mediaId":"../x"}`)}, protocol.CodeInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := alice.SendFrame(ctxT(t, 5*time.Second), tc.f)
			require.Equal(t, tc.code, errCode(t, err))
		})
	}
	quiet(t, alice, 200*time.Millisecond)
}
