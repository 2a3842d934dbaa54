package media

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRangesServable(t *testing.T) {
	const size = 1000
	backward := make([]string, 100)
	for i := range backward {
		backward[i] = fmt.Sprintf("%d-%d", 990-10*i, 999-10*i)
	}
	for _, tc := range []struct {
		header string
		ok     bool
	}{
		{"", true},
		{"bytes=0-99", true},
		{"bytes=-100", true},
		{"bytes=500-", true},
		{"bytes=0-9,20-29,40-49,60-69", true},
		{"bytes=0-9,10-19", true},                    // adjacent, not overlapping
		{"bytes=0-9,20-29,40-49,60-69,80-89", false}, // five
		{"bytes=" + strings.Join(backward, ","), false},
		{"bytes=100-199,0-99", false}, // backward
		{"bytes=0-99,50-149", false},  // overlapping
		{"bytes=0-,0-", false},
		{"bytes=-10,0-9", false},      // the suffix is the end of the object
		{"bytes=0-9,2000-3000", true}, // the unsatisfiable spec is dropped
		{"bytes=x-y", true},           // malformed: ServeContent's 416
		{"items=0-9", true},
		{"bytes=2000-", true}, // unsatisfiable: ServeContent's 416
	} {
		require.Equal(t, tc.ok, rangesServable(tc.header, size), tc.header)
	}
}

// FuzzRangeHeader checks parseByteRanges against http.ServeContent, which parses
// the header the gateway then serves, and rangesServable's promise: what it
// accepts is at most MaxRanges ranges, ascending, within the object. The
// seed corpus is in testdata/fuzz/FuzzRangeHeader.
func FuzzRangeHeader(f *testing.F) {
	f.Add("bytes=0-99", int64(1000))
	f.Add("bytes=-5,10-,3-4", int64(20))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 || size > 1<<16 || len(header) > 4096 {
			return
		}
		ranges, err := parseByteRanges(header, size)
		var sum int64
		for _, r := range ranges {
			require.GreaterOrEqual(t, r.start, int64(0))
			require.GreaterOrEqual(t, r.length, int64(0))
			require.LessOrEqual(t, r.start+r.length, size)
			sum += r.length
		}
		if rangesServable(header, size) && err == nil {
			require.LessOrEqual(t, len(ranges), MaxRanges)
			for i := 1; i < len(ranges); i++ {
				require.GreaterOrEqual(t, ranges[i].start, ranges[i-1].start+ranges[i-1].length)
			}
		}

		// The same header as http.ServeContent sees it.
		if strings.ContainsAny(header, "\r\n\x00") {
			return // cannot be a header value
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Range", header)
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "", time.Time{}, bytes.NewReader(make([]byte, size)))
		switch {
		case err != nil:
			require.Equal(t, http.StatusRequestedRangeNotSatisfiable, rec.Code, "%q: %v", header, err)
		case len(ranges) == 0 || sum > size:
			require.Equal(t, http.StatusOK, rec.Code, header)
		case len(ranges) == 1:
			require.Equal(t, http.StatusPartialContent, rec.Code, header)
			r := ranges[0]
			require.Equal(t, fmt.Sprintf("bytes %d-%d/%d", r.start, r.start+r.length-1, size), rec.Header().Get("Content-Range"), header)
		default:
			require.Equal(t, http.StatusPartialContent, rec.Code, header)
			require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/byteranges"), header)
		}
	})
}
