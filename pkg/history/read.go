package history

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// logMsg is one NATTER_LOG message as read: its stream seq, headers and payload.
type logMsg struct {
	seq  uint64
	hdr  nats.Header
	data []byte
}

// readTail returns chat's log messages (subject subj) from stream seq start through
// stream seq last, n of them, oldest first: a range whose first and last message
// the caller has read (bounds, seek), so n is exact (a chat's log messages carry
// contiguous chat seqs). A message removed meanwhile is left out.
//
// On a stream that allows direct gets (NATTER_LOG on one replica,
// natsutil.LogStreamConfig) the range is one batched direct get: one request
// however long the range, instead of a get per message (a tail of up to
// smallTail) or a short-lived consumer (three requests). An answer that does not
// reach last (cut by the server's byte limit, or timed out) is read again the
// other way. Where direct gets are not allowed (replicated streams, whose
// followers may answer them a moment behind the leader) it reads as before.
func readTail(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, subj string, start, last uint64, n int) ([]logMsg, error) {
	if info := st.CachedInfo(); info != nil && info.Config.AllowDirect {
		if out, ok := readTailDirect(ctx, js, info.Config.Name, subj, start, last, n); ok {
			return out, nil
		}
	}
	out := make([]logMsg, 0, n)
	if n <= smallTail {
		for next := start; next <= last; {
			raw, err := st.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return nil, err
			}
			if raw.Sequence > last {
				break
			}
			out = append(out, logMsg{raw.Sequence, raw.Header, raw.Data})
			next = raw.Sequence + 1
		}
		return out, nil
	}
	msgs, err := natsutil.ReadBatch(ctx, st, subj, start, time.Time{}, n)
	if err != nil {
		return nil, err
	}
	for _, jm := range msgs {
		if meta, err := jm.Metadata(); err == nil && meta.Sequence.Stream <= last {
			out = append(out, logMsg{meta.Sequence.Stream, jm.Headers(), jm.Data()})
		}
	}
	return out, nil
}

// readTailDirect is readTail's batched direct get. ok is false when the answer did
// not reach stream seq last.
func readTailDirect(ctx context.Context, js jetstream.JetStream, stream, subj string, start, last uint64, n int) (out []logMsg, ok bool) {
	msgs, err := jetstreamext.GetBatch(ctx, js, stream, n, jetstreamext.GetBatchSeq(start), jetstreamext.GetBatchSubject(subj))
	if err != nil {
		return nil, false
	}
	out = make([]logMsg, 0, n)
	for raw, err := range msgs {
		if err != nil {
			return nil, false
		}
		if raw.Sequence > last {
			break
		}
		out = append(out, logMsg{raw.Sequence, raw.Header, raw.Data})
		if raw.Sequence == last {
			return out, true
		}
	}
	return nil, false
}
