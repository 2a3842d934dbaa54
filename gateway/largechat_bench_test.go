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
// of a members_added event of protocol.MaxBulkMembers users in a large chat (the
// sequencer publishes the event on each added user's subject), past the hub's
// delivery to the user's connections (BenchmarkHubDeliver in gateway/transport): the
// membership watch (userDelivery, largechat.Chats.UserMessage). B/op is the cost per
// added connected user. Run with
// go test ./gateway -run XXX -bench BulkAddedDelivery -benchmem
func BenchmarkBulkAddedDelivery(b *testing.B) {
	uids := make([]string, protocol.MaxBulkMembers)
	for i := range uids {
		uids[i] = fmt.Sprintf("bnqcm5o%d", 10000+i)
	}
	meta, _ := json.Marshal(protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: uids, By: "importer"})
	data := protocol.EncodeMessageFrame(&protocol.Message{ChatID: "big-chat", Seq: 7, MessageID: "m1", SenderID: "importer",
		MessageType: protocol.TypeSystem, Meta: meta, Timestamp: 1})
	h := transport.NewHub(nil, "natter.user.", 2, zap.NewNop())
	g := &Gateway{cfg: Config{SendQueue: 1 << 30}, hub: h, members: newMemberCache(nil, 16, time.Minute)}
	g.large = largechat.New(largechat.Deps{Hub: h, Members: g.members, Events: &g.sysEvents}, zap.NewNop())
	// The one connected user is among the added (the last of them: Concerns walks the list).
	uid := uids[len(uids)-1]
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		g.userDelivery(uid, data)
	}
}
