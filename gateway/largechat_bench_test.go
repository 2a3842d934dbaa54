package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natter-chat/natter/gateway/largechat"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// BenchmarkBulkAddedDelivery is what a gateway spends on one connected user's copy
// of a members_added event of protocol.MaxBulkMembers users in a large chat (the
// sequencer publishes the event on each added user's subject): the hub's delivery
// with the membership watch (userDelivery, largechat.Chats.UserMessage). B/op is the
// cost per added connected user. Run with
// go test ./gateway -run XXX -bench BulkAddedDelivery -benchmem
func BenchmarkBulkAddedDelivery(b *testing.B) {
	uids := make([]string, protocol.MaxBulkMembers)
	for i := range uids {
		uids[i] = fmt.Sprintf("bnqcm5o%d", 10000+i)
	}
	meta, _ := json.Marshal(protocol.SystemEvent{Event: protocol.EventMembersAdded, UserIDs: uids, By: "importer"})
	data := protocol.EncodeMessageFrame(&protocol.Message{ChatID: "big-chat", Seq: 7, MessageID: "m1", SenderID: "importer",
		MessageType: protocol.TypeSystem, Meta: meta, Timestamp: 1})
	h, conns := benchHub(1, 1)
	g := &Gateway{cfg: Config{SendQueue: 1 << 30}, hub: h, members: newMemberCache(nil, 16, time.Minute)}
	g.large = largechat.New(largechat.Deps{Hub: h, Members: g.members, Events: &g.sysEvents}, zap.NewNop())
	h.onUser = g.userDelivery
	// The one connected user is among the added (the last of them: Concerns walks the list).
	delete(h.users, "user-0")
	h.users[uids[len(uids)-1]] = &userEntry{conns: conns}
	conns[0].user = uids[len(uids)-1]
	m := &nats.Msg{Subject: "natter.user." + uids[len(uids)-1], Data: data}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.deliver(m)
		if i++; i%4096 == 0 {
			drainQueues(conns)
		}
	}
}
