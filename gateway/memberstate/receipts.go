package memberstate

import (
	"net/http"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/store"
	"golang.org/x/sync/errgroup"
)

// receiptReadParallelism bounds the concurrent store reads of one receipts listing
// (a backend such as Cassandra keeps read state partitioned by user: one read each).
const receiptReadParallelism = 8

// receiptsResponse is the answer to GET /api/v1/chats/{id}/receipts.
type receiptsResponse struct {
	ChatID   string          `json:"chatId"`
	Receipts []memberReceipt `json:"receipts"`
	// Complete is false in chats above gateway.receipts-max-members, where only the
	// caller's own watermarks are listed (live receipts there go only to the senders
	// of the messages read, so nobody holds everyone's).
	Complete bool `json:"complete"`
}

// memberReceipt is one member's watermarks, as the receipt frame carries them.
type memberReceipt struct {
	UserID    string `json:"userId"`
	Delivered uint64 `json:"delivered"`
	Read      uint64 `json:"read"`
}

// Receipts serves GET /api/v1/chats/{id}/receipts (members only): every current
// member's delivered and read watermarks, ordered by user ID, zeros included. It is
// what a client that starts (a reload, a second device) needs to show read ticks:
// receipt frames only tell of watermarks that move while it is connected.
func (s *Service) Receipts(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	if err := s.deps.Chats.MemberOf(ctx, chat, id.UserID); err != nil {
		s.fail(w, err)
		return
	}
	// One more than the limit tells a big group, without reading its members.
	ms, err := s.deps.Store.MembersPage(ctx, chat, "", s.cfg.ReceiptsMaxMembers+1)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	resp := receiptsResponse{ChatID: chat, Complete: len(ms) <= s.cfg.ReceiptsMaxMembers}
	if !resp.Complete {
		ms = []store.Member{{ChatID: chat, UserID: id.UserID}}
	}
	resp.Receipts = make([]memberReceipt, len(ms))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(receiptReadParallelism)
	for i, m := range ms {
		eg.Go(func() error {
			rs, err := s.deps.Store.GetReadState(ectx, chat, m.UserID)
			if err != nil {
				return err
			}
			resp.Receipts[i] = memberReceipt{UserID: m.UserID, Delivered: rs.Delivered, Read: rs.Read}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}
