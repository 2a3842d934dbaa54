package client_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

func msg(seq uint64, id string) protocol.Message {
	if id == "" {
		id = fmt.Sprintf("m%d", seq)
	}
	return protocol.Message{ChatID: "c", Seq: seq, MessageID: id}
}

func TestOrderer(t *testing.T) {
	type push struct {
		seq uint64
		id  string
	}
	p := func(seqs ...uint64) []push {
		var out []push
		for _, s := range seqs {
			out = append(out, push{seq: s})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		start  uint64
		pushes []push
		want   []uint64
		gap    bool
	}{
		{"in order", 0, p(1, 2, 3), []uint64{1, 2, 3}, false},
		{"reversed", 0, p(3, 2, 1), []uint64{1, 2, 3}, false},
		{"shuffled", 0, p(4, 1, 5, 3, 2), []uint64{1, 2, 3, 4, 5}, false},
		{"gap held", 0, p(1, 3, 4), []uint64{1}, true},
		{"duplicates by seq", 0, p(1, 1, 2, 1, 3, 3), []uint64{1, 2, 3}, false},
		{"resume from cursor", 10, p(9, 10, 11, 12), []uint64{11, 12}, false},
		{"same messageId at another seq", 0, []push{{1, "x"}, {2, "x"}, {3, "y"}}, []uint64{1, 3}, false},
		{"same messageId held", 0, []push{{3, "x"}, {1, "x"}, {2, "z"}}, []uint64{1, 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := client.NewOrderer("c", tc.start)
			var got []uint64
			for _, ps := range tc.pushes {
				out, _ := o.Push(msg(ps.seq, ps.id))
				for _, m := range out {
					got = append(got, m.Seq)
				}
			}
			require.Equal(t, tc.want, got)
			_, _, gap := o.Gap()
			require.Equal(t, tc.gap, gap)
		})
	}
	o := client.NewOrderer("c", 0)
	o.Push(msg(1, ""))
	o.Push(msg(4, ""))
	o.Push(msg(6, ""))
	after, before, ok := o.Gap()
	require.True(t, ok)
	require.Equal(t, [2]uint64{1, 4}, [2]uint64{after, before}, "the first missing range")
	require.Equal(t, 2, o.Held())
}

// proxy forwards a local port to the gateway; cut drops every live connection.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() + "/ws" }

// runClient starts a Client for user against url; it stops when the test ends.
func runClient(t *testing.T, n *testutil.Natter, user, url string, tweak func(*client.Config)) *client.Client {
	cfg := client.Config{URL: url, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		Token: func(context.Context) (string, error) { return n.Token(t, user), nil }}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := client.NewClient(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, c.Connected, 10*time.Second, 10*time.Millisecond)
	return c
}

// receive collects n messages from c, failing after d.
func receive(t *testing.T, c *client.Client, n int, d time.Duration) []protocol.Message {
	t.Helper()
	var out []protocol.Message
	timer := time.NewTimer(d)
	defer timer.Stop()
	for len(out) < n {
		select {
		case m := <-c.Messages():
			out = append(out, m)
		case <-timer.C:
			t.Fatalf("got %d of %d messages", len(out), n)
		}
	}
	return out
}

// noMore asserts nothing else arrives within d.
func noMore(t *testing.T, c *client.Client, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("unexpected extra message %+v", m)
	case <-time.After(d):
	}
}

func seqs(ms []protocol.Message) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func oneTo(n int) []uint64 {
	var out []uint64
	for i := 1; i <= n; i++ {
		out = append(out, uint64(i))
	}
	return out
}

func TestClientReconnectMidSendLosesAndDuplicatesNothing(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	pa, pb := startProxy(t, n.GatewayAddr().String()), startProxy(t, n.GatewayAddr().String())
	alice := runClient(t, n, "alice", pa.url(), nil)
	bob := runClient(t, n, "bob", pb.url(), nil)
	const total = 60
	var wg sync.WaitGroup
	sent := make([]string, total)
	for i := 0; i < total; i++ {
		sent[i] = fmt.Sprintf("m%03d", i)
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := alice.Send(ctx, chat, id, "text "+id)
			if err != nil {
				t.Errorf("send %s: %v", id, err)
			}
		}(sent[i])
		switch i {
		case 20, 40:
			pa.cut() // sends in flight when the network drops
		case 30:
			pb.cut()
		}
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	got := receive(t, bob, total, 20*time.Second)
	mine := receive(t, alice, total, 20*time.Second)
	noMore(t, bob, 300*time.Millisecond)
	require.Equal(t, oneTo(total), seqs(got), "seq 1..N, each once")
	require.Equal(t, seqs(got), seqs(mine))
	var gotIDs []string
	for i, m := range got {
		gotIDs = append(gotIDs, m.MessageID)
		require.Equal(t, m.MessageID, mine[i].MessageID, "both members see the same order")
	}
	slices.Sort(gotIDs)
	require.Equal(t, sent, gotIDs, "exactly the sent messages")
	connects := 0
	for len(alice.Events()) > 0 {
		if f := <-alice.Events(); f.Type == protocol.FrameConnected {
			connects++
		}
	}
	require.GreaterOrEqual(t, connects, 3, "alice's connection really was cut twice")
}

func TestClientFillsForcedGap(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := runClient(t, n, "alice", n.WSURL(), nil)
	var dropped []uint64
	bob := runClient(t, n, "bob", n.WSURL(), func(c *client.Config) {
		c.GapGrace = 20 * time.Millisecond
		c.Inbound = func(f *protocol.Frame) []*protocol.Frame {
			if f.Type == protocol.FrameMessage && (f.Seq == 3 || f.Seq == 4) && !slices.Contains(dropped, f.Seq) {
				dropped = append(dropped, f.Seq) // live delivery loses 3 and 4
				return nil
			}
			return []*protocol.Frame{f}
		}
	})
	for i := 1; i <= 6; i++ {
		_, err := alice.Send(context.Background(), chat, fmt.Sprintf("g%d", i), "x")
		require.NoError(t, err)
	}
	got := receive(t, bob, 6, 10*time.Second)
	require.Equal(t, oneTo(6), seqs(got))
	require.Equal(t, []uint64{3, 4}, dropped, "the live frames really were dropped")
	noMore(t, bob, 200*time.Millisecond)
}

// TestClientRecoversMissedFirstMessage loses a chat's first message: the fill asks
// for history after seq 0, which must start at seq 1 (it once returned the newest
// page, so the client looped on the gap and never delivered again).
func TestClientRecoversMissedFirstMessage(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := runClient(t, n, "alice", n.WSURL(), nil)
	dropped := false
	bob := runClient(t, n, "bob", n.WSURL(), func(c *client.Config) {
		c.GapGrace = 20 * time.Millisecond
		c.Inbound = func(f *protocol.Frame) []*protocol.Frame {
			if f.Type == protocol.FrameMessage && f.Seq == 1 && !dropped {
				dropped = true // live delivery loses the chat's first message
				return nil
			}
			return []*protocol.Frame{f}
		}
	})
	for i := 1; i <= 5; i++ {
		_, err := alice.Send(context.Background(), chat, fmt.Sprintf("f%d", i), "x")
		require.NoError(t, err)
	}
	got := receive(t, bob, 5, 10*time.Second)
	require.Equal(t, oneTo(5), seqs(got))
	require.True(t, dropped, "the live frame really was dropped")
	require.EqualValues(t, 5, bob.LastSeq(chat))
	noMore(t, bob, 200*time.Millisecond)
}

func TestClientOrdersOutOfOrderFrames(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "group", "g", "bob")
	alice := runClient(t, n, "alice", n.WSURL(), nil)
	var held []*protocol.Frame
	bob := runClient(t, n, "bob", n.WSURL(), func(c *client.Config) {
		c.GapGrace = 10 * time.Second // reordering is not loss: no fill needed
		c.Inbound = func(f *protocol.Frame) []*protocol.Frame {
			if f.Type != protocol.FrameMessage {
				return []*protocol.Frame{f}
			}
			held = append(held, f)
			if len(held) < 4 {
				return nil
			}
			out := slices.Clone(held)
			slices.Reverse(out)
			held = nil
			return append(out, out[0]) // reversed, and one twice
		}
	})
	for i := 1; i <= 12; i++ {
		_, err := alice.Send(context.Background(), chat, fmt.Sprintf("o%d", i), "x")
		require.NoError(t, err)
	}
	got := receive(t, bob, 12, 10*time.Second)
	require.Equal(t, oneTo(12), seqs(got))
	noMore(t, bob, 200*time.Millisecond)
}

func TestClientResumesWithSync(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	alice := runClient(t, n, "alice", n.WSURL(), nil)
	bob := runClient(t, n, "bob", n.WSURL(), func(c *client.Config) { c.ReconnectMin = 500 * time.Millisecond; c.ReconnectMax = time.Second })
	_, err := alice.Send(context.Background(), chat, "r1", "before")
	require.NoError(t, err)
	receive(t, bob, 1, 5*time.Second)
	bob.DropConnection()
	require.Eventually(t, func() bool { return !bob.Connected() }, 5*time.Second, 5*time.Millisecond)
	for i := 2; i <= 6; i++ {
		_, err := alice.Send(context.Background(), chat, fmt.Sprintf("r%d", i), "while away")
		require.NoError(t, err)
	}
	got := receive(t, bob, 5, 10*time.Second)
	require.Equal(t, []uint64{2, 3, 4, 5, 6}, seqs(got))
	require.EqualValues(t, 6, bob.LastSeq(chat))
}

func TestClientRefusedSendIsNotRetried(t *testing.T) {
	n := testutil.StartNatter(t, testutil.Config(t))
	chat := n.CreateChat(t, "alice", "direct", "", "bob")
	eve := runClient(t, n, "eve", n.WSURL(), nil)
	for _, tc := range []struct {
		name, chat string
		code       protocol.Code
	}{
		{"not a member", chat, protocol.CodeNotMember},
		{"invalid chat id", "a.b", protocol.CodeInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := eve.Send(ctx, tc.chat, "", "x")
			var pe *protocol.Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tc.code, pe.Code)
		})
	}
}
