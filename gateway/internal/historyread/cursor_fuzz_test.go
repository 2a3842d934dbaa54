package historyread

import (
	"strconv"
	"testing"

	"github.com/natter-chat/natter/pkg/protocol"
)

// FuzzParseCursor checks REST cursor parsing on hostile input: it never panics, a
// refusal is bad_request, and an accepted cursor is the canonical decimal it was
// given (so it cannot smuggle anything past the parser). Seeds:
// testdata/fuzz/FuzzParseCursor.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "0", "1", "18446744073709551615", "18446744073709551616", "-1", "+1", "1e3", "0x10", " 1", "1.>", "00000000000000000001"} {
		f.Add("before", s)
		f.Add("after", s)
	}
	f.Fuzz(func(t *testing.T, name, v string) {
		n, err := ParseCursor(name, v)
		if err != nil {
			pe, ok := err.(*protocol.Error)
			if !ok || pe.Code != protocol.CodeBadRequest {
				t.Fatalf("ParseCursor(%q, %q): want bad_request, got %v", name, v, err)
			}
			if n != 0 {
				t.Fatalf("ParseCursor(%q, %q) returned %d with an error", name, v, n)
			}
			return
		}
		if v == "" {
			if n != 0 {
				t.Fatalf("empty cursor gave %d", n)
			}
			return
		}
		if len(v) > 20 {
			t.Fatalf("ParseCursor accepted %d digits", len(v))
		}
		if n == 0 && name != "after" {
			t.Fatalf("ParseCursor(%q, %q) accepted 0", name, v)
		}
		back, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil || back != n {
			t.Fatalf("ParseCursor(%q, %q) = %d, not the decimal given", name, v, n)
		}
	})
}
