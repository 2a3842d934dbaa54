package protocol

import (
	"strings"
	"testing"
)

// Hot-path benchmarks: every send is decoded once by a gateway, every message is
// encoded once by the sequencer and decoded once per persisted copy. Run with
// go test -bench . -benchmem ./pkg/protocol/
var (
	benchSend = []byte(`{"type":"send","chatId":"dm-0123456789abcdefghjkmnpqrs","messageId":"b1x2y3-1a-2b-3c4d5e6f7g","content":"` +
		strings.Repeat("x", 100) + `"}`)
	benchMsg = &Message{ChatID: "dm-0123456789abcdefghjkmnpqrs", Seq: 123456, MessageID: "b1x2y3-1a-2b-3c4d5e6f7g",
		SenderID: "user-123456", Content: strings.Repeat("x", 100), MessageType: TypeText, Timestamp: 1_800_000_000_000}
)

func BenchmarkDecodeFrameSend(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchSend)))
	for b.Loop() {
		if _, err := DecodeFrame(benchSend); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeFrameAck(b *testing.B) {
	b.ReportAllocs()
	f := &Frame{Type: FrameAck, ChatID: benchMsg.ChatID, MessageID: benchMsg.MessageID}
	for b.Loop() {
		_ = EncodeFrame(f)
	}
}

func BenchmarkEncodeIngress(b *testing.B) {
	b.ReportAllocs()
	m := *benchMsg
	m.Seq, m.Timestamp = 0, 0
	for b.Loop() {
		_ = EncodeIngress(&m)
	}
}

func BenchmarkDecodeIngress(b *testing.B) {
	b.ReportAllocs()
	m := *benchMsg
	m.Seq, m.Timestamp = 0, 0
	data := EncodeIngress(&m)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeIngress(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeMessageFrame(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = EncodeMessageFrame(benchMsg)
	}
}

func BenchmarkDecodeMessageFrame(b *testing.B) {
	b.ReportAllocs()
	data := EncodeMessageFrame(benchMsg)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeMessageFrame(data); err != nil {
			b.Fatal(err)
		}
	}
}
