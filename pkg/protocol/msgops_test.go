package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidEmoji(t *testing.T) {
	for _, tc := range []struct {
		e  string
		ok bool
	}{
		{"👍", true},
		{"👍🏽", true},      // skin tone modifier: one cluster
		{"👨‍👩‍👧", true},   // ZWJ family
		{"🇫🇷", true},      // flag: two regional indicators, one cluster
		{"1️⃣", true},     // keycap
		{"❤️", true},      // with variation selector
		{"🏴󠁧󠁢󠁳󠁣󠁴󠁿", true}, // subdivision flag with tag characters
		{":thumbs_up:", true},
		{":+1:", true},
		{"", false},
		{"a", false},
		{"1", false},
		{"!", false},
		{"👍👍", false}, // two clusters
		{"👍 ", false},
		{" ", false},
		{"\x00", false},
		{"\u202e👍", false}, // bidi override
		{":Thumbs:", false},
		{":a b:", false},
		{"::", false},
		{":" + strings.Repeat("a", 40) + ":", false}, // over 32 bytes
		{string([]byte{0xff}), false},
		{"<script>", false},
	} {
		if got := ValidEmoji(tc.e); got != tc.ok {
			t.Errorf("ValidEmoji(%q) = %v, want %v", tc.e, got, tc.ok)
		}
	}
}

func TestParseReaction(t *testing.T) {
	ev, ok := ParseReaction(json.RawMessage(`{"emoji":"👍","remove":true}`))
	if !ok || ev.Emoji != "👍" || !ev.Remove {
		t.Fatalf("got %+v %v", ev, ok)
	}
	for _, bad := range []string{``, `{}`, `{"emoji":"x"}`, `[1]`, `{"emoji":1}`} {
		if _, ok := ParseReaction(json.RawMessage(bad)); ok {
			t.Errorf("ParseReaction(%s) accepted", bad)
		}
	}
}

// TestHistoryStateOnlyWhenSet: a live message (no state) carries none of the
// current-state fields; a state read from history carries its stateSeq, in message
// JSON and in a message frame alike.
func TestHistoryStateOnlyWhenSet(t *testing.T) {
	live := Message{ChatID: "c", MessageID: "m", SenderID: "u", MessageType: TypeText}
	b, err := json.Marshal(live)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"StateSeq", "stateSeq", "edited", "deleted", "reactions"} {
		if strings.Contains(string(b), field) {
			t.Errorf("%s in %s", field, b)
		}
	}
	read := live
	read.StateSeq = 9
	for _, b := range [][]byte{EncodeMessageFrame(&read), EncodeFrame(MessageFrame(&read))} {
		if !strings.Contains(string(b), `"stateSeq":9`) {
			t.Errorf("no stateSeq in %s", b)
		}
		got, err := DecodeMessageFrame(b)
		if err != nil || got.StateSeq != 9 {
			t.Errorf("decoded %+v, %v from %s", got, err, b)
		}
	}
}
