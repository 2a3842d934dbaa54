package livestate

import (
	"context"
	"slices"

	"github.com/natter-chat/natter/pkg/presencekv"
	"github.com/natter-chat/natter/pkg/protocol"
)

// MaxSubUsers caps the userIds of one presence_sub frame.
const MaxSubUsers = 100

// OnSub handles presence_sub: {"userIds":[...]} starts watching those users (all
// or none: one refused user refuses the frame) and answers with a presence_update
// per user carrying the frame's id; with "remove":true it stops watching them and
// answers nothing. Its error is the answer to the frame.
func (p *Presence) OnSub(ctx context.Context, c Conn, f *protocol.Frame) error {
	if len(f.UserIDs) == 0 {
		return protocol.Errorf(protocol.CodeBadRequest, "userIds is required")
	}
	if len(f.UserIDs) > MaxSubUsers {
		return protocol.Errorf(protocol.CodeTooLarge, "presence_sub names %d users, the limit is %d", len(f.UserIDs), MaxSubUsers)
	}
	var uids []string
	for _, uid := range f.UserIDs {
		if err := protocol.ValidID("user", uid); err != nil {
			return err
		}
		if !slices.Contains(uids, uid) {
			uids = append(uids, uid)
		}
	}
	if f.Remove {
		p.unwatch(c, uids)
		return nil
	}
	for _, uid := range uids {
		if err := p.mayWatch(ctx, c.UserID(), c.Service(), uid); err != nil {
			return err
		}
	}
	if err := p.watch(c, uids); err != nil {
		return err
	}
	// Subscribed before reading: a change in between is delivered, never lost.
	for _, uid := range uids {
		u, err := p.user(ctx, uid)
		if err != nil {
			return err
		}
		c.Send(presencekv.ViewOf(uid, u).Frame(f.ID))
	}
	return nil
}
