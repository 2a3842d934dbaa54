package sequencer_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/stretchr/testify/require"
)

// TestIngressValidatedAsAtTheGateway checks the sequencer refuses what the gateway
// and pkg/publish refuse (protocol.ValidateMessage), for messages a backend
// published straight to NATTER_IN from a member: each is refused back to its sender
// and never sequenced.
func TestIngressValidatedAsAtTheGateway(t *testing.T) {
	e := setup(t)
	sub, err := e.nc.SubscribeSync(e.subj.User("alice"))
	require.NoError(t, err)
	ctx := context.Background()
	bad := map[string]*protocol.Message{
		"meta not an object":       {Content: "x", MessageType: protocol.TypeText, Meta: json.RawMessage(`[1]`)},
		"messageType not an ID":    {Content: "x", MessageType: "a.b"},
		"nothing to say":           {MessageType: protocol.TypeText},
		"refId on a plain message": {Content: "x", MessageType: protocol.TypeText, RefID: "m0"},
	}
	want := map[string]bool{}
	for id, m := range map[string]string{"b1": "meta not an object", "b2": "messageType not an ID", "b3": "nothing to say", "b4": "refId on a plain message"} {
		msg := bad[m]
		msg.ChatID, msg.MessageID, msg.SenderID = "c1", id, "alice"
		_, err := e.js.Publish(ctx, e.subj.In("c1"), protocol.EncodeIngress(msg))
		require.NoError(t, err)
		want[id] = true
	}
	e.publishIngress(t, "c1", "ok")
	s := e.run(t)
	require.Eventually(t, func() bool { n, _, _ := s.Stats(); return n == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"ok"}, e.logIDs(t, "c1"))
	for len(want) > 0 {
		raw, err := sub.NextMsg(5 * time.Second)
		require.NoError(t, err, "still waiting for the refusal of %v", want)
		var f protocol.Frame
		require.NoError(t, json.Unmarshal(raw.Data, &f))
		if f.Type != protocol.FrameError {
			continue // the delivery of "ok"
		}
		require.Equal(t, protocol.CodeBadRequest, f.Code, f.Message)
		delete(want, f.MessageID)
	}
}
