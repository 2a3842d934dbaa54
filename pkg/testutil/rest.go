package testutil

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// Do makes a REST call with a bearer token (none if empty) and a JSON body (none if
// nil; a []byte or string is sent as is) and returns the status and response body.
func (n *Natter) Do(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, n.HTTPURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// CreateChat creates a chat as user and returns its ID; it fails the test on error.
func (n *Natter) CreateChat(t testing.TB, user, kind, name string, members ...string) string {
	t.Helper()
	status, body := n.Do(t, "POST", "/api/v1/chats", n.Token(t, user),
		map[string]any{"type": kind, "members": members, "name": name})
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("create chat: HTTP %d: %s", status, body)
	}
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}
