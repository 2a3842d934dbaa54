package gateway_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
)

// restBodyRoutes are the REST calls that read a JSON body, as the fuzzer picks
// them ({g} is a group alice administers).
var restBodyRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/chats"},
	{"POST", "/api/v1/chats/{g}/members"},
	{"POST", "/api/v1/chats/{g}/messages"},
	{"PATCH", "/api/v1/chats/{g}"},
	{"PUT", "/api/v1/chats/{g}/mute"},
	{"PUT", "/api/v1/users/alice/presence"},
	{"DELETE", "/api/v1/chats/{g}/members"},
	{"POST", "/api/v1/dev/token"},
}

// knownCodes are the error codes of docs/protocol.md.
var knownCodes = map[protocol.Code]bool{
	protocol.CodeBadRequest: true, protocol.CodeUnknownType: true, protocol.CodeInvalidID: true, protocol.CodeTooLarge: true,
	protocol.CodeUnauthorized: true, protocol.CodeTokenExpired: true, protocol.CodeForbidden: true, protocol.CodeNotMember: true,
	protocol.CodeNotFound: true, protocol.CodeConflict: true, protocol.CodeRateLimited: true, protocol.CodeUnavailable: true,
	protocol.CodeStorageFull: true, protocol.CodeBadHost: true,
}

// FuzzRESTBodies sends hostile bodies to every REST call that reads one, against a
// running natter over a real socket. Whatever the body: no 5xx; every refusal is a
// JSON error with a documented code and its HTTP status; and a refusal changes
// nothing (alice's chats and the group's members are as before). Seeds:
// testdata/fuzz/FuzzRESTBodies (valid bodies of each call, wrong types, unknown
// fields, trailing data, duplicate keys, hostile IDs, huge numbers, deep nesting,
// invalid UTF-8, oversize).
func FuzzRESTBodies(f *testing.F) {
	cfg := testutil.Config(f)
	cfg.Gateway.MaxBodyBytes = 4 << 10
	n := testutil.StartNatter(f, cfg)
	group := n.CreateChat(f, "alice", "group", "fuzz", "bob")
	token := n.Token(f, "alice")
	type state struct {
		Chats   []string
		Members []string
	}
	snapshot := func(t *testing.T) state {
		var s state
		status, body := n.Do(t, "GET", "/api/v1/chats?limit=500", token, nil)
		var chats struct {
			Chats []struct{ ID string } `json:"chats"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &chats) != nil {
			t.Fatalf("list chats: %d %s", status, body)
		}
		for _, c := range chats.Chats {
			s.Chats = append(s.Chats, c.ID)
		}
		status, body = n.Do(t, "GET", "/api/v1/chats/"+group+"/members", token, nil)
		var ms struct {
			Members []struct{ UserID, Role string } `json:"members"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &ms) != nil {
			t.Fatalf("members: %d %s", status, body)
		}
		for _, m := range ms.Members {
			s.Members = append(s.Members, m.UserID+"/"+m.Role)
		}
		sort.Strings(s.Chats)
		sort.Strings(s.Members)
		return s
	}
	f.Add(uint8(0), []byte(`{"type":"group","members":["bob"],"name":"x"}`))
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := restBodyRoutes[int(route)%len(restBodyRoutes)]
		path := r.path
		if i := len("/api/v1/chats/"); len(path) > i && path[i:i+3] == "{g}" {
			path = path[:i] + group + path[i+3:]
		}
		before := snapshot(t)
		status, out := n.Do(t, r.method, path, token, body)
		if status >= 500 {
			t.Fatalf("%s %s %q: HTTP %d %s", r.method, r.path, body, status, out)
		}
		if status < 400 {
			if !json.Valid(out) {
				t.Fatalf("%s %s: %d with a body that is not JSON: %q", r.method, r.path, status, out)
			}
			return
		}
		var e struct {
			Error struct {
				Code    protocol.Code `json:"code"`
				Message string        `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(out, &e); err != nil || !knownCodes[e.Error.Code] || e.Error.Message == "" {
			t.Fatalf("%s %s %q: HTTP %d with %q: not a documented JSON error", r.method, r.path, body, status, out)
		}
		if after := snapshot(t); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s %s %q was refused (%s) but changed state: %+v -> %+v", r.method, r.path, body, e.Error.Code, before, after)
		}
	})
}
