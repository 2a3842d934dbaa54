package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/store"
)

// Plan is who is who in a run: the users, the chats and their members, and which
// connection belongs to which user. Connection i belongs to user i % len(Users); a
// chat's members are user indices. Every process of a run works from the same Plan.
type Plan struct {
	// Run is a short random ID that prefixes user and message IDs, so runs against
	// the same server never mix.
	Run   string     `json:"run"`
	Users []string   `json:"users"`
	Chats []PlanChat `json:"chats"`
	Conns int        `json:"conns"`
	// Senders per chat: the first Senders members of each chat send (0: all).
	Senders int `json:"senders"`
}

// PlanChat is one chat of a Plan.
type PlanChat struct {
	ID      string `json:"id"`
	Members []int  `json:"members"`
}

// newRunID returns a 6-character lowercase run ID.
func newRunID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "b" + string(b[:5])
}

// newPlan lays out users, connections and chats (IDs filled in later by createChats).
// Chat j has the members (j*size + k) mod users for k < size. Direct chats (size 2)
// beyond users/2 would repeat pairs, so then chat j is instead the pair
// (j mod users, j mod users + 1 + j div users): every user is in as many chats as
// every other (within one), and up to maxDirectChats(users) pairs are distinct.
func newPlan(run string, users, conns, chats, size, senders int) *Plan {
	p := &Plan{Run: run, Conns: conns, Senders: senders}
	p.Users = make([]string, users)
	for i := range p.Users {
		p.Users[i] = run + "u" + strconv.Itoa(i)
	}
	p.Chats = make([]PlanChat, chats)
	pairs := size == 2 && chats > users/2
	members := make([]int, chats*size) // one backing array: a million chats stay cheap
	for j := range p.Chats {
		m := members[j*size : (j+1)*size : (j+1)*size]
		if pairs {
			a := j % users
			m[0], m[1] = a, (a+1+j/users)%users
		} else {
			for k := range m {
				m[k] = (j*size + k) % users
			}
		}
		p.Chats[j].Members = m
	}
	return p
}

// maxDirectChats is how many distinct direct chats newPlan can lay out for users:
// every pair at distance 1..(users-1)/2 around the ring of users.
func maxDirectChats(users int) int {
	if users < 2 {
		return 0
	}
	return max(users*((users-1)/2), users/2)
}

// userOf returns the user index of connection i.
func (p *Plan) userOf(conn int) int { return conn % len(p.Users) }

// devices returns how many connections user u has.
func (p *Plan) devices(u int) int {
	n := p.Conns / len(p.Users)
	if u < p.Conns%len(p.Users) {
		n++
	}
	return n
}

// recipients returns how many connections receive a message to chat c.
func (p *Plan) recipients(c int) int {
	n := 0
	for _, u := range p.Chats[c].Members {
		n += p.devices(u)
	}
	return n
}

// senders returns the member user indices of chat c that send.
func (p *Plan) senders(c int) []int {
	m := p.Chats[c].Members
	if p.Senders > 0 && p.Senders < len(m) {
		return m[:p.Senders]
	}
	return m
}

// userChats returns, per user index, the chats (indices) it belongs to.
func (p *Plan) userChats() [][]int {
	out := make([][]int, len(p.Users))
	for c, ch := range p.Chats {
		for _, u := range ch.Members {
			out[u] = append(out[u], c)
		}
	}
	return out
}

// dedupe drops chats whose ID repeats an earlier one (direct chats between the same
// two users when there are more chats than pairs).
func (p *Plan) dedupe() {
	seen := map[string]bool{}
	out := p.Chats[:0]
	for _, c := range p.Chats {
		if !seen[c.ID] {
			seen[c.ID] = true
			out = append(out, c)
		}
	}
	p.Chats = out
}

// tokenSource issues tokens for users: signed locally with an HS256 secret (the dev
// secret of a data directory, or a secret file), or fetched from a token endpoint
// (POST {"user": id} answering {"token": ...}, as /api/v1/dev/token does).
type tokenSource struct {
	secret []byte
	url    string
	client *http.Client

	mu    sync.Mutex
	cache map[string]string
}

func newTokenSource(secretFile, dataDir, tokenURL string) (*tokenSource, error) {
	ts := &tokenSource{url: tokenURL, client: &http.Client{Timeout: 30 * time.Second}, cache: map[string]string{}}
	switch {
	case tokenURL != "":
		if _, err := url.Parse(tokenURL); err != nil {
			return nil, fmt.Errorf("bench: --token-url: %w", err)
		}
	case secretFile != "":
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("bench: secret file: %w", err)
		}
		ts.secret = bytes.TrimSpace(b)
	case dataDir != "":
		b, err := os.ReadFile(filepath.Join(dataDir, auth.DevSecretName))
		if err != nil {
			return nil, fmt.Errorf("bench: dev secret of --data-dir: %w", err)
		}
		ts.secret = bytes.TrimSpace(b)
	default:
		return nil, errors.New("bench: no token source: give --embedded, --data-dir, --secret-file or --token-url")
	}
	return ts, nil
}

// token returns a token for user (cached: one per user per run).
func (ts *tokenSource) token(ctx context.Context, user string) (string, error) {
	ts.mu.Lock()
	t, ok := ts.cache[user]
	ts.mu.Unlock()
	if ok {
		return t, nil
	}
	var err error
	if ts.secret != nil {
		t, err = auth.Sign(ts.secret, user, 24*time.Hour, false)
	} else {
		t, err = ts.fetch(ctx, user)
	}
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", user, err)
	}
	ts.mu.Lock()
	ts.cache[user] = t
	ts.mu.Unlock()
	return t, nil
}

func (ts *tokenSource) fetch(ctx context.Context, user string) (string, error) {
	body, _ := json.Marshal(map[string]string{"user": user})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: HTTP %d: %s", resp.StatusCode, data)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("token endpoint: no token in %q", data)
	}
	return out.Token, nil
}

// httpBase turns a WebSocket URL (ws://host:port/ws) into the gateway's base URL.
func httpBase(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.Path, u.RawQuery = "", ""
	return strings.TrimSuffix(u.String(), "/"), nil
}

// restClient makes the bench's REST calls (chat creation, offline posts).
type restClient struct {
	base   string
	tokens *tokenSource
	client *http.Client
}

// do sends a JSON request as user and decodes a JSON answer into out (if not nil).
func (rc *restClient) do(ctx context.Context, method, path, user string, in, out any) error {
	tok, err := rc.tokens.token(ctx, user)
	if err != nil {
		return err
	}
	return rc.doToken(ctx, method, path, tok, in, out)
}

// doToken is do with a given token.
func (rc *restClient) doToken(ctx context.Context, method, path, tok string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, rc.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := rc.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %.300s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// createMembersMax is the most members createChats names in a creation: the
// default gateway.limits.invite-burst (20). A user may name at most
// gateway.limits.member-add-burst (200) members, and invite at most invite-burst
// users it shares no chat with, which is every bench user: a group of 21 to 200
// members failed with too_large.
const createMembersMax = 20

// createChats creates every chat of p through POST /api/v1/chats (direct chats for
// two members, groups otherwise), as each chat's first member, with conc requests
// at a time, and fills in the chat IDs.
func createChats(ctx context.Context, rc *restClient, p *Plan, conc int) error {
	work := make(chan int)
	errc := make(chan error, conc)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				c := &p.Chats[j]
				kind := "group"
				if len(c.Members) == 2 {
					kind = "direct"
				}
				others := make([]string, 0, len(c.Members)-1)
				for _, u := range c.Members[1:] {
					others = append(others, p.Users[u])
				}
				var out struct {
					ID      string   `json:"id"`
					Invited []string `json:"invited"`
				}
				// A user may create a group with at most createMembersMax others: a
				// larger one is created empty and filled in bulk with a service token.
				bulk := kind == "group" && len(others) > createMembersMax
				members := others
				if bulk {
					members = []string{}
				}
				req := map[string]any{"type": kind, "members": members, "name": fmt.Sprintf("bench %d", j)}
				if err := rc.do(ctx, http.MethodPost, "/api/v1/chats", p.Users[c.Members[0]], req, &out); err != nil {
					errc <- fmt.Errorf("create chat %d: %w", j, err)
					return
				}
				c.ID = out.ID
				if bulk {
					tok, err := rc.tokens.serviceToken("bench-importer")
					if err == nil {
						_, err = addInBulk(ctx, rc, tok, c.ID, others, nil)
					}
					if err != nil {
						errc <- fmt.Errorf("chat %d: %w", j, err)
						return
					}
				}
				// A server that asks for consent (gateway.consent-direct-adds off)
				// invites users who share no chat with the creator: they accept.
				for _, u := range out.Invited {
					if err := rc.do(ctx, http.MethodPost, "/api/v1/invitations/"+out.ID+"/accept", u, nil, nil); err != nil {
						errc <- fmt.Errorf("chat %d: accept invitation of %s: %w", j, u, err)
						return
					}
				}
			}
		}()
	}
	var err error
loop:
	for j := range p.Chats {
		select {
		case work <- j:
		case err = <-errc:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(work)
	wg.Wait()
	close(errc)
	if err == nil {
		err = <-errc
	}
	if err != nil {
		return err
	}
	p.dedupe()
	return nil
}

// chatCreator is the part of store.Store that createChatsInStore uses.
type chatCreator interface {
	CreateChat(ctx context.Context, chat store.Chat, members []store.Member) (store.Chat, bool, error)
}

// createChatsInStore creates the direct chats of p by writing them through the
// store, conc at a time: the one thing POST /api/v1/chats does for a direct chat
// (store.CreateChat of the chat and its two members; no NATS event, no large-chat
// mark, which only groups above the threshold get). The gateways, the sequencer and
// the notifier learn of a chat from the store when traffic first touches it, as
// they do for a chat created over REST on another gateway. Chat IDs are
// ids.Direct of the two members, as the gateway makes them. progress, if not nil,
// is called with the count done every 10,000 chats.
func createChatsInStore(ctx context.Context, st chatCreator, p *Plan, conc int, progress func(done int)) error {
	var next, done atomic.Int64
	errc := make(chan error, conc)
	now := time.Now().UTC()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				j := int(next.Add(1) - 1)
				if j >= len(p.Chats) {
					return
				}
				c := &p.Chats[j]
				if len(c.Members) != 2 {
					errc <- fmt.Errorf("chat %d: only direct chats can be created in the store", j)
					return
				}
				a, b := p.Users[c.Members[0]], p.Users[c.Members[1]]
				c.ID = ids.Direct(a, b)
				chat := store.Chat{ID: c.ID, Kind: store.KindDirect, CreatedBy: a, CreatedAt: now}
				members := []store.Member{
					{ChatID: c.ID, UserID: a, Role: store.RoleMember, JoinedAt: now},
					{ChatID: c.ID, UserID: b, Role: store.RoleMember, JoinedAt: now},
				}
				if _, _, err := st.CreateChat(ctx, chat, members); err != nil {
					errc <- fmt.Errorf("create chat %d in the store: %w", j, err)
					return
				}
				if n := done.Add(1); progress != nil && n%10_000 == 0 {
					progress(int(n))
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.dedupe()
	return nil
}
