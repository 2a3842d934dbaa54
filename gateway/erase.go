package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// The admin API that erases an account (docs/privacy.md, "Erasing an account"):
//
//	DELETE /api/v1/admin/users/{id}   service token with the accounts:admin scope
//
// It is on the gateway's listener, as every API a backend calls, and is refused
// (403) to every other token: a user token, a service token without the scope. In
// order:
//  1. the user goes on the deny list (denylist.go): from then on every gateway
//     refuses their tokens and their live connections are closed, so nothing they
//     send can land after the erasure below;
//  2. they are removed from each group they are in, as a sequenced member_removed
//     event by the caller (so every member and the sequencer see it in order);
//  3. the store erases their data (store.LifecycleStore.EraseUser: messages become
//     tombstones with their seq kept, reactions, memberships, read states, mutes,
//     floors, push devices, profile, blocks, invitations);
//  4. their uploads are deleted from the media bucket, with their share records
//     and usage;
//  5. one audit log line records who erased whom and the counts.
//
// Presence needs no step: with every connection closed, the user's presence entry
// expires with its TTL. Repeating the call is harmless and erases what may have
// been stored meanwhile (a persister that lagged).

// eraseAnswer is the answer to an erasure.
type eraseAnswer struct {
	UserID string `json:"userId"`
	store.EraseReport
	// GroupsLeft counts the groups the user was removed from by a sequenced event.
	GroupsLeft int `json:"groupsLeft"`
	// Media counts the uploads deleted.
	Media int `json:"media"`
}

// maxEraseChats bounds the chats listed for an erasure (the store's listing limit
// per page); the store's EraseUser removes every membership whatever their number.
const maxEraseChats = 100_000

func (g *Gateway) eraseUser(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !id.AccountsAdmin {
		g.fail(w, protocol.Errorf(protocol.CodeForbidden, "erasing an account needs a service token with the %s scope", protocol.ScopeAccountsAdmin))
		return
	}
	user := r.PathValue("id")
	if err := validID("user", user); err != nil {
		g.fail(w, err)
		return
	}
	// The erasure goes on if the client goes away: half an erasure helps no one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := g.deny.put(ctx, user, id.UserID); err != nil {
		g.fail(w, protocol.Errorf(protocol.CodeUnavailable, "deny list unavailable; nothing was erased; retry").WithCause(err))
		return
	}
	ans := eraseAnswer{UserID: user}
	groups, err := g.userGroups(ctx, user)
	if err != nil {
		g.fail(w, storeUnavailable(err))
		return
	}
	for _, chat := range groups {
		if _, err := g.announce(ctx, chat, id.UserID, protocol.SystemEvent{Event: protocol.EventMemberRemoved, UserID: user, By: id.UserID}); err != nil {
			// The store removes the membership below in any case; the members then
			// learn of it when the chat is next loaded.
			g.log.Warn("erasure: member_removed not announced", zap.String("chat_id", chat), zap.String("user_id", user), zap.Error(err))
			continue
		}
		g.members.forget(chat, user)
		ans.GroupsLeft++
	}
	rep, err := g.deps.Store.EraseUser(ctx, user)
	if err != nil {
		g.fail(w, storeUnavailable(err))
		return
	}
	ans.EraseReport = rep
	if ans.Media, err = g.media.EraseUploads(ctx, user); err != nil {
		g.fail(w, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; the rest is erased; retry to finish").WithCause(err))
		return
	}
	g.log.Info("account erased", zap.String("audit", "account_erased"), zap.String("user_id", user), zap.String("by", id.UserID),
		zap.Int("messages", rep.Messages), zap.Int("chats", rep.Chats), zap.Int("groups_left", ans.GroupsLeft),
		zap.Int("devices", rep.Devices), zap.Bool("profile", rep.Profile), zap.Int("media", ans.Media),
		zap.Duration("took", time.Since(start)))
	writeJSON(w, http.StatusOK, ans)
}

// userGroups lists the groups user is a member of.
func (g *Gateway) userGroups(ctx context.Context, user string) ([]string, error) {
	var out []string
	var cursor store.ChatListCursor
	for len(out) < maxEraseChats {
		page, err := g.deps.Store.UserChatsBefore(ctx, user, cursor, 500)
		if err != nil {
			return nil, fmt.Errorf("chats of %s: %w", user, err)
		}
		for _, c := range page {
			if c.Kind == store.KindGroup {
				out = append(out, c.ID)
			}
		}
		if len(page) < 500 {
			break
		}
		last := page[len(page)-1]
		cursor = store.ChatListCursor{Activity: last.LastActivity, ChatID: last.ID}
	}
	return out, nil
}
