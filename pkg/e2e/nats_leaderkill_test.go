package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// These tests isolate JetStream from Natter: they append and consume
// with exactly the patterns Natter's roles use, on a 3-node cluster of nats-server
// processes (sync_interval: always, R3), while the node leading the stream or the
// consumer is SIGKILLed again and again, and then check what JetStream promised:
// every acknowledged append is in the stream at the sequence its ack named, on
// every node once it leads, and a consumer's ack floor never passes a message that
// was never acked. Natter's guarantees are built on these two; if one fails here,
// no change in Natter can make a crash lose nothing.

// lkRounds is how many leader nodes each test kills, one after another (each
// round costs an election, 4-9 s, and a restart).
const lkRounds = 2

// lkLedger records every acknowledged append: Nats-Msg-Id -> stream sequence.
type lkLedger struct {
	mu    sync.Mutex // guards the fields below
	acked map[string]uint64
	// wrongLast counts appends refused by their fence although the writer's view of
	// the subject was exact (its previous append there was acknowledged): the
	// stream no longer held what it had acknowledged.
	wrongLast []string
	errs      map[string]int // failed appends by error text (a figure)
}

func (l *lkLedger) add(id string, seq uint64) {
	l.mu.Lock()
	l.acked[id] = seq
	l.mu.Unlock()
}

func (l *lkLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *lkLedger) failed(err error) {
	l.mu.Lock()
	l.errs[err.Error()]++
	l.mu.Unlock()
}

// lkLastSeqs reads the stream sequence of each subject's last message (0: none),
// retrying until the stream answers.
func lkLastSeqs(ctx context.Context, s jetstream.Stream, subjects []string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, subj := range subjects {
		for {
			m, err := s.GetLastMsgForSubject(ctx, subj)
			if err == nil {
				out[subj] = m.Sequence
				break
			}
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				out[subj] = 0
				break
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out, nil
}

func lkSubjects(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}

// lkBatchWriter appends atomic batches of 16-64 messages over several subjects
// until ctx ends, as the sequencer (fenced: each subject's first message in the
// batch carries Nats-Expected-Last-Subject-Sequence) and the gateway (not fenced)
// do: no flow control, Nats-Msg-Id on every message, one short attempt per batch.
func lkBatchWriter(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, l *lkLedger, prefix string, fenced bool) {
	subjs := lkSubjects(prefix, 6)
	var last map[string]uint64
	exact := false // last holds what the stream acknowledged, not what was read
	for n := 0; ctx.Err() == nil; n++ {
		if last == nil {
			var err error
			if last, err = lkLastSeqs(ctx, s, subjs); err != nil {
				return
			}
			exact = false
		}
		size := 16 + rand.IntN(49)
		msgs := make([]*nats.Msg, size)
		ids := make([]string, size)
		inBatch := map[string]bool{}
		for i := range msgs {
			subj := subjs[rand.IntN(len(subjs))]
			ids[i] = fmt.Sprintf("%s-%d-%d", prefix, n, i)
			h := nats.Header{}
			h.Set(jetstream.MsgIDHeader, ids[i])
			if fenced && !inBatch[subj] {
				h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last[subj], 10))
			}
			inBatch[subj] = true
			msgs[i] = &nats.Msg{Subject: subj, Header: h, Data: []byte(ids[i])}
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := jetstreamext.PublishMsgBatch(actx, js, msgs, jetstreamext.BatchFlowControl{})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var apiErr *jetstream.APIError
			if exact && errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
				l.mu.Lock()
				l.wrongLast = append(l.wrongLast, fmt.Sprintf("%s batch %d: %v (expected %v)", prefix, n, err, last))
				l.mu.Unlock()
			}
			l.failed(err)
			last = nil // the batch may or may not be stored: read the subjects again
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if ack.BatchSize != uint64(size) || ack.Sequence < uint64(size) {
			l.failed(fmt.Errorf("batch ack for %d messages: seq %d, count %d", size, ack.Sequence, ack.BatchSize))
			last = nil
			continue
		}
		first := ack.Sequence - uint64(size) + 1
		for i, m := range msgs {
			l.add(ids[i], first+uint64(i))
			last[m.Subject] = first + uint64(i)
		}
		exact = true
	}
}

// lkAsyncWriter appends to several subjects at once, one fenced asynchronous
// publish in flight per subject (each carrying Nats-Msg-Id and
// Nats-Expected-Last-Subject-Sequence), as a pipelined sequencer would.
func lkAsyncWriter(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, l *lkLedger, prefix string) {
	subjs := lkSubjects(prefix, 6)
	var last map[string]uint64
	exact := map[string]bool{}
	for n := 0; ctx.Err() == nil; n++ {
		if last == nil {
			var err error
			if last, err = lkLastSeqs(ctx, s, subjs); err != nil {
				return
			}
			clear(exact)
		}
		futs := make([]jetstream.PubAckFuture, len(subjs))
		for i, subj := range subjs {
			id := fmt.Sprintf("%s-%d-%d", prefix, n, i)
			h := nats.Header{}
			h.Set(jetstream.MsgIDHeader, id)
			h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last[subj], 10))
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: subj, Header: h, Data: []byte(id)})
			if err != nil {
				l.failed(err)
				continue
			}
			futs[i] = f
		}
		reload := false
		for i, f := range futs {
			if f == nil {
				reload = true
				continue
			}
			select {
			case ack := <-f.Ok():
				l.add(string(f.Msg().Data), ack.Sequence)
				last[subjs[i]] = ack.Sequence
				exact[subjs[i]] = true
			case err := <-f.Err():
				var apiErr *jetstream.APIError
				if exact[subjs[i]] && errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
					l.mu.Lock()
					l.wrongLast = append(l.wrongLast, fmt.Sprintf("%s %s: %v (expected %d)", prefix, f.Msg().Data, err, last[subjs[i]]))
					l.mu.Unlock()
				}
				l.failed(err)
				reload = true
			case <-time.After(5 * time.Second):
				l.failed(errors.New("async publish: no ack within 5s"))
				reload = true
			case <-ctx.Done():
				return
			}
		}
		if reload {
			last = nil
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// lkStepDown asks the leader of stream to hand over to node name, and waits until
// it has.
func lkStepDown(t *testing.T, cl *natsCluster, nc *nats.Conn, js jetstream.JetStream, stream, name string) {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"placement": map[string]any{"preferred": name}})
	require.True(t, waitFor(60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if i, err := cl.streamLeader(ctx, js, stream); err == nil && cl.nodes[i].name == name {
			return true
		}
		_, _ = nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, req, 2*time.Second)
		time.Sleep(500 * time.Millisecond)
		return false
	}), "%s leads %s", name, stream)
}

// lkReadAll reads every message of stream through an ordered consumer (placed on
// the stream leader): Nats-Msg-Id (the payload) -> stream sequence. A read that
// fails part way (the ordered consumer could not recreate itself in time, right
// after a leader change on a busy machine: CI run 21), or that has not finished
// after 20 s (CI run 38: one attempt hung until the whole budget was gone), is
// started again from the beginning, within two minutes: only what the stream holds
// is checked.
func lkReadAll(t *testing.T, js jetstream.JetStream, stream string) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := lkTryReadAll(actx, js, stream)
		acancel()
		if err == nil {
			return out
		}
		require.NoError(t, ctx.Err(), "reading %s: %v", stream, err)
		t.Logf("reading %s (attempt %d) failed, reading it again: %v", stream, attempt, err)
		time.Sleep(time.Second)
	}
}

func lkTryReadAll(ctx context.Context, js jetstream.JetStream, stream string) (map[string]uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	if info.State.Msgs == 0 {
		return out, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	it, err := c.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		out[string(m.Data())] = md.Sequence.Stream
		if md.Sequence.Stream >= info.State.LastSeq {
			return out, nil
		}
	}
}

// TestNATSKeepsAckedAppendsAcrossLeaderKills: atomic batches fenced as the
// sequencer appends them, atomic batches deduplicated as the gateway stores sends,
// and pipelined fenced asynchronous publishes, into one R3 stream while its leader
// node is SIGKILLed lkRounds times. Afterwards every acknowledged append is in the
// stream at the sequence its ack named, read with each node leading in turn, and
// no fenced append was refused for a last sequence the stream had acknowledged.
func TestNATSKeepsAckedAppendsAcrossLeaderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills nats-server processes for about a minute; it runs in the full suite")
	}
	cl := startNATSCluster(t, 3)
	nc, err := nats.Connect(cl.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	const stream = "LK"
	s, err := js.CreateStream(ctxT(t, 30*time.Second), jetstream.StreamConfig{
		Name: stream, Subjects: []string{"lk.>"}, Storage: jetstream.FileStorage, Replicas: 3,
		Duplicates: 2 * time.Minute, AllowAtomicPublish: true,
	})
	require.NoError(t, err)

	l := &lkLedger{acked: map[string]uint64{}, errs: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	var load sync.WaitGroup
	load.Go(func() { lkBatchWriter(ctx, js, s, l, "lk.seq.", true) })
	load.Go(func() { lkBatchWriter(ctx, js, s, l, "lk.gw.", false) })
	load.Go(func() { lkAsyncWriter(ctx, js, s, l, "lk.async.") })
	defer func() { stop(); load.Wait() }()

	progress := func(what string) {
		t.Helper()
		n := l.count()
		require.True(t, waitFor(60*time.Second, func() bool { return l.count() >= n+300 }), "appends acknowledged %s", what)
	}
	progress("at first")
	for round := range lkRounds {
		victim := -1
		require.True(t, waitFor(30*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			victim, err = cl.streamLeader(ctx, js, stream)
			return err == nil
		}), "stream leader known")
		at := time.Now()
		cl.kill(victim)
		progress(fmt.Sprintf("with %s killed", cl.nodes[victim].name))
		t.Logf("round %d: SIGKILL %s (leader), appends acknowledged again after %.1fs; %d acknowledged so far",
			round+1, cl.nodes[victim].name, time.Since(at).Seconds(), l.count())
		cl.restart(victim)
		require.True(t, waitFor(60*time.Second, func() bool {
			return streamCurrent(ctxT(t, 5*time.Second), js, stream, 3)
		}), "every replica current after %s restarted", cl.nodes[victim].name)
		progress("after the restart")
	}
	stop()
	load.Wait()

	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("%d appends acknowledged; failed appends by error: %v", len(l.acked), l.errs)
	require.Empty(t, l.wrongLast, "fenced appends refused although the writer knew the acknowledged last sequence")
	for _, nd := range cl.nodes {
		lkStepDown(t, cl, nc, js, stream, nd.name)
		have := lkReadAll(t, js, stream)
		var lost, moved []string
		for id, seq := range l.acked {
			got, ok := have[id]
			switch {
			case !ok:
				lost = append(lost, fmt.Sprintf("%s@%d", id, seq))
			case got != seq:
				moved = append(moved, fmt.Sprintf("%s@%d→%d", id, seq, got))
			}
		}
		t.Logf("%s leading: %d messages, %d acknowledged appends lost, %d at another sequence", nd.name, len(have), len(lost), len(moved))
		require.Empty(t, lost, "%s leading: acknowledged appends lost", nd.name)
		require.Empty(t, moved, "%s leading: acknowledged appends at another sequence", nd.name)
	}
}

// TestNATSAckFloorNeverPassesUnackedAcrossLeaderKills: a durable pull consumer set
// up as a sequencer partition's (filtered, explicit acks, a pinned priority
// group, 1 s pulls) on an R3 stream that interleaves other subjects; the worker
// acks every delivery but a few it holds, a janitor purges below the ack floor as
// the sequencer's does, and the consumer's leader node is SIGKILLed lkRounds
// times.
// The ack floor never reaches a held message, no held message is purged, and every
// published message is delivered.
func TestNATSAckFloorNeverPassesUnackedAcrossLeaderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills nats-server processes for about a minute; it runs in the full suite")
	}
	cl := startNATSCluster(t, 3)
	nc, err := nats.Connect(cl.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	const stream, group = "AF", "g"
	s, err := js.CreateStream(ctxT(t, 30*time.Second), jetstream.StreamConfig{
		Name: stream, Subjects: []string{"af.>"}, Storage: jetstream.FileStorage, Replicas: 3,
		Duplicates: 2 * time.Minute,
	})
	require.NoError(t, err)
	cons, err := s.CreateOrUpdateConsumer(ctxT(t, 30*time.Second), jetstream.ConsumerConfig{
		Durable: "P0", FilterSubject: "af.0.>", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxAckPending: 1000, MaxDeliver: -1,
		PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{group}, PinnedTTL: 2 * time.Second,
	})
	require.NoError(t, err)

	var (
		mu        sync.Mutex          // guards the maps and counters below
		published = map[uint64]bool{} // stream seqs of acked publishes to af.0
		delivered = map[uint64]bool{}
		held      = map[uint64]bool{} // delivered, never to be acked
		maxFirst  uint64              // highest seq delivered so far
		behind    int                 // first deliveries below a seq delivered before
		floorErrs []string
		purgeErrs atomic.Int32
	)
	ctx, stop := context.WithCancel(context.Background())
	var load sync.WaitGroup
	defer func() { stop(); load.Wait() }()
	// Publisher: partition 0 and another partition, alternately.
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	load.Go(func() {
		ctx := pubCtx
		for i := 0; ctx.Err() == nil; i++ {
			subj := fmt.Sprintf("af.%d.c%d", i%2, i%5)
			h := nats.Header{}
			h.Set(jetstream.MsgIDHeader, strconv.Itoa(i))
			for ctx.Err() == nil {
				actx, cancel := context.WithTimeout(ctx, time.Second)
				ack, err := js.PublishMsg(actx, &nats.Msg{Subject: subj, Header: h, Data: []byte(strconv.Itoa(i))})
				cancel()
				if err == nil {
					if i%2 == 0 {
						mu.Lock()
						published[ack.Sequence] = true
						mu.Unlock()
					}
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	// Worker: the sequencer's pull loop; holds every 97th message unacked.
	load.Go(func() {
		for ctx.Err() == nil {
			it, err := cons.Messages(jetstream.PullPriorityGroup(group), jetstream.PullMaxMessages(64),
				jetstream.PullExpiry(time.Second), jetstream.WithMessagesErrOnMissingHeartbeat(false))
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			stopIt := context.AfterFunc(ctx, it.Stop)
			for {
				m, err := it.Next()
				if err != nil {
					break
				}
				md, err := m.Metadata()
				if err != nil {
					continue
				}
				seq := md.Sequence.Stream
				mu.Lock()
				if !delivered[seq] {
					if seq < maxFirst {
						behind++
					}
					maxFirst = max(maxFirst, seq)
				}
				delivered[seq] = true
				hold := held[seq] || seq%97 == 0
				held[seq] = hold
				mu.Unlock()
				if !hold {
					_ = m.Ack()
				}
			}
			stopIt()
			it.Stop()
		}
	})
	// Janitor: checks the floor against the held messages, then purges below it.
	load.Go(func() {
		for ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond)
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			info, err := cons.Info(ictx)
			cancel()
			if err != nil {
				continue
			}
			floor := info.AckFloor.Stream
			mu.Lock()
			for seq, h := range held {
				if h && seq <= floor {
					floorErrs = append(floorErrs, fmt.Sprintf("ack floor %d passes held message %d (leader %s)", floor, seq, info.Cluster.Leader))
				}
			}
			mu.Unlock()
			if floor == 0 {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := s.Purge(pctx, jetstream.WithPurgeSubject("af.0.>"), jetstream.WithPurgeSequence(floor+1)); err != nil {
				purgeErrs.Add(1)
			}
			cancel()
		}
	})

	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered)
	}
	progress := func(what string) {
		t.Helper()
		n := count()
		require.True(t, waitFor(60*time.Second, func() bool { return count() >= n+200 }), "deliveries %s", what)
	}
	progress("at first")
	for round := range lkRounds {
		victim := -1
		require.True(t, waitFor(30*time.Second, func() bool {
			info, err := cons.Info(ctxT(t, 2*time.Second))
			if err != nil || info.Cluster == nil {
				return false
			}
			victim = cl.index(info.Cluster.Leader)
			return victim >= 0
		}), "consumer leader known")
		at := time.Now()
		cl.kill(victim)
		progress(fmt.Sprintf("with %s killed", cl.nodes[victim].name))
		t.Logf("round %d: SIGKILL %s (consumer leader), deliveries again after %.1fs", round+1, cl.nodes[victim].name, time.Since(at).Seconds())
		cl.restart(victim)
		require.True(t, waitFor(60*time.Second, func() bool {
			return streamCurrent(ctxT(t, 5*time.Second), js, stream, 3)
		}), "every replica current after %s restarted", cl.nodes[victim].name)
		progress("after the restart")
	}
	// Every published message is delivered at least once (one the consumer
	// skipped would never be sequenced): one lost in flight comes back after
	// AckWait.
	stopPub()
	var missing []uint64
	waitFor(90*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		missing = missing[:0]
		for seq := range published {
			if !delivered[seq] {
				missing = append(missing, seq)
			}
		}
		return len(missing) == 0
	})
	stop()
	load.Wait()

	mu.Lock()
	defer mu.Unlock()
	var gone []uint64
	nheld := 0
	for seq, h := range held {
		if !h {
			continue
		}
		nheld++
		if _, err := s.GetMsg(ctxT(t, 10*time.Second), seq); err != nil {
			gone = append(gone, seq)
		}
	}
	t.Logf("%d published to the partition, %d delivered, %d held; %d first deliveries came after a higher seq; %d purges failed",
		len(published), len(delivered), nheld, behind, purgeErrs.Load())
	require.Empty(t, floorErrs, "the ack floor passed a message never acked")
	require.Empty(t, gone, "held (never acked) messages purged")
	require.Empty(t, missing, "published messages never delivered")
}
