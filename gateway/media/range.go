package media

import (
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// Range requests on media (GET /api/v1/media/{id}).
//
// http.ServeContent serves the ranges of a Range header in the order given, seeking
// the object for each. The object store's reader only reads forward (objectSeeker),
// so every range behind the previous one re-reads the object from its start: 100
// backward ranges on a 25 MiB object made one small request cost 2.5 GB of reads.
// The gateway therefore serves a Range header only when its ranges are few
// (MaxRanges), in ascending order and not overlapping, which one forward pass
// over the object answers. Any other Range header is ignored, as RFC 9110 §14.2
// allows, and the whole object is sent with 200: never more work than a plain GET.

// MaxRanges is the most byte ranges a media request may ask for at once.
const MaxRanges = 4

// byteRange is one satisfiable range of a Range header: length bytes from start.
type byteRange struct {
	start, length int64
}

var (
	errBadRange       = errors.New("invalid Range header")
	errRangeNoOverlap = errors.New("no range of the Range header is satisfiable")
)

// parseByteRanges parses a Range header against an object of size bytes, as
// net/http does: a bytes= unit, comma-separated first-last, first- or -suffix specs;
// specs that start at or past the end are skipped, ends past it are clipped. It
// returns errBadRange for a header net/http refuses as malformed, and
// errRangeNoOverlap when every spec was skipped (both 416 from http.ServeContent).
// An empty header, or one with no specs, gives no ranges.
func parseByteRanges(s string, size int64) ([]byteRange, error) {
	if s == "" {
		return nil, nil
	}
	spec, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		return nil, errBadRange
	}
	var out []byteRange
	noOverlap := false
	for ra := range strings.SplitSeq(spec, ",") {
		ra = textproto.TrimString(ra)
		if ra == "" {
			continue
		}
		first, last, ok := strings.Cut(ra, "-")
		if !ok {
			return nil, errBadRange
		}
		first, last = textproto.TrimString(first), textproto.TrimString(last)
		var r byteRange
		if first == "" {
			// -N: the last N bytes.
			if last == "" || last[0] == '-' {
				return nil, errBadRange
			}
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, errBadRange
			}
			n = min(n, size)
			r = byteRange{start: size - n, length: n}
		} else {
			start, err := strconv.ParseInt(first, 10, 64)
			if err != nil || start < 0 {
				return nil, errBadRange
			}
			if start >= size {
				noOverlap = true // unsatisfiable: skipped
				continue
			}
			r.start = start
			if last == "" {
				r.length = size - start
			} else {
				end, err := strconv.ParseInt(last, 10, 64)
				if err != nil || start > end {
					return nil, errBadRange
				}
				r.length = min(end, size-1) - start + 1
			}
		}
		out = append(out, r)
	}
	if noOverlap && len(out) == 0 {
		return nil, errRangeNoOverlap
	}
	return out, nil
}

// rangesServable reports whether the Range header h may be served for an object
// of size bytes in one forward pass: at most MaxRanges ranges, each starting
// after the previous one ends. A malformed header, or one with no range
// satisfiable, is left to http.ServeContent, which answers 416 without reading.
func rangesServable(h string, size int64) bool {
	ranges, err := parseByteRanges(h, size)
	if err != nil {
		return true // ServeContent refuses it with 416 without reading anything
	}
	if len(ranges) > MaxRanges {
		return false
	}
	for i := 1; i < len(ranges); i++ {
		prev := ranges[i-1]
		if ranges[i].start < prev.start+prev.length {
			return false
		}
	}
	return true
}

// limitRanges drops a Range header that rangesServable refuses, so that the whole
// object is served instead.
func limitRanges(r *http.Request, size int64) {
	if h := r.Header.Get("Range"); h != "" && !rangesServable(h, size) {
		r.Header.Del("Range")
	}
}
