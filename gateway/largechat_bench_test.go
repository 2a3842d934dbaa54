package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/gateway/largechat"
	"github.com/natter-chat/natter/gateway/transport"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// BenchmarkBulkAddedDelivery is what a gateway spends on one connected user's copy
// of a members_added event of protocol.MaxBulkMembers users, past the hub's
// delivery to the user's connections (BenchmarkHubDeliver in gateway/transport): the
// membership watch (userDelivery, largechat.Chats.UserMessage). B/op is the cost per
// added connected user. Run with
// go test ./gateway -run XXX -bench BulkAddedDelivery -benchmem
//
//   - per-user copy: in a large chat the sequencer sends each added user a copy
//     naming only them (sequencer/members.go, tellAdded): a different small frame
//     per user, each parsed once.
//   - whole event: in a small chat every member's copy is the one frame naming all
//     of them (the membership watch then compares bytes, sysevents.go).
func BenchmarkBulkAddedDelivery(b *testing.B) {
	uids := make([]string, protocol.MaxBulkMembers)
	for i := range uids {
		uids[i] = fmt.Sprintf("bnqcm5o%d", 10000+i)
	}
	frame := func(ev protocol.SystemEvent) []byte {
		meta, _ := json.Marshal(ev)
		return protocol.EncodeMessageFrame(&protocol.Message{ChatID: "big-chat", Seq: 7, MessageID: "m1", SenderID: "importer",
			MessageType: protocol.TypeSystem, Meta: meta, Timestamp: 1})
	}
	gateway := func() *Gateway {
		h := transport.NewHub(nil, "natter.user.", 2, zap.NewNop())
		g := &Gateway{cfg: Config{SendQueue: 1 << 30}, hub: h, members: newMemberCache(nil, 16, time.Minute)}
		g.large = largechat.New(largechat.Deps{Hub: h, Members: g.members, Events: &g.sysEvents}, zap.NewNop())
		return g
	}
	b.Run("per-user copy", func(b *testing.B) {
		copies := make([][]byte, len(uids))
		for i, u := range uids {
			copies[i] = frame(protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: []string{u}, Total: len(uids), By: "importer"})
		}
		g := gateway()
		b.SetBytes(int64(len(copies[0])))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			g.userDelivery(uids[i], copies[i])
			i = (i + 1) % len(uids)
		}
	})
	b.Run("whole event", func(b *testing.B) {
		data := frame(protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: uids, By: "importer"})
		g := gateway()
		// The one connected user is among the added (the last of them: Concerns walks the list).
		uid := uids[len(uids)-1]
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			g.userDelivery(uid, data)
		}
	})
}
