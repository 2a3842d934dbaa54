package protocol

import (
	"encoding/json"
	"unicode/utf8"
)

// fastDecoder decodes the common shape of Natter's hot frames without reflection: one
// JSON object whose members are known fields holding plain strings (no escapes),
// integers, booleans, or (meta) an object or array. Every string field of the result
// is a substring of one copy of the input, so a frame costs one allocation for all its
// strings instead of one each.
//
// It never guesses: whatever it does not accept (escapes, invalid UTF-8, null, an
// unknown or differently cased key, a list field, a number with a fraction or an
// exponent, any syntax error) makes it report false, and the caller decodes the input
// again with encoding/json from a zero value. So the result is always exactly what
// json.Unmarshal gives, and so are the errors.
type fastDecoder struct {
	data []byte
	str  string // string(data), made on the first string field
	pos  int
}

// fastTarget is what a fastDecoder fills: a Frame, or a Message with (typ not nil)
// or without the "type" of a message frame.
type fastTarget struct {
	frame *Frame
	msg   *Message
	typ   *string
}

// object decodes the object that data must consist of (surrounded by white space
// only) into t.
func (d *fastDecoder) object(t *fastTarget) bool {
	d.ws()
	if !d.consume('{') {
		return false
	}
	d.ws()
	if d.consume('}') {
		return d.end()
	}
	for {
		d.ws()
		start, end, ok := d.rawString()
		if !ok {
			return false
		}
		d.ws()
		if !d.consume(':') {
			return false
		}
		d.ws()
		if !d.member(t, d.data[start:end]) {
			return false
		}
		d.ws()
		switch {
		case d.consume(','):
		case d.consume('}'):
			return d.end()
		default:
			return false
		}
	}
}

func (d *fastDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *fastDecoder) consume(c byte) bool {
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *fastDecoder) end() bool {
	d.ws()
	return d.pos == len(d.data)
}

// delimited reports whether the value just read ends here: white space, ',' or '}'
// follows (or nothing, which object then refuses).
func (d *fastDecoder) delimited() bool {
	if d.pos == len(d.data) {
		return true
	}
	switch d.data[d.pos] {
	case ' ', '\t', '\n', '\r', ',', '}':
		return true
	}
	return false
}

// rawString reads a string without escapes or control characters, of valid UTF-8,
// and returns the bounds of its content.
func (d *fastDecoder) rawString() (start, end int, ok bool) {
	if !d.consume('"') {
		return 0, 0, false
	}
	start = d.pos
	ascii := true
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			if !ascii && !utf8.Valid(d.data[start:i]) {
				return 0, 0, false
			}
			d.pos = i + 1
			return start, i, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, 0, false
}

func (d *fastDecoder) string(dst *string) bool {
	start, end, ok := d.rawString()
	if !ok {
		return false
	}
	if d.str == "" {
		d.str = string(d.data)
	}
	*dst = d.str[start:end]
	return true
}

// digits reads 1 to max decimal digits without a leading zero and returns their
// value.
func (d *fastDecoder) digits(max int) (uint64, bool) {
	start := d.pos
	var v uint64
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		v = v*10 + uint64(d.data[d.pos]-'0')
		d.pos++
	}
	n := d.pos - start
	if n == 0 || n > max || (n > 1 && d.data[start] == '0') {
		return 0, false
	}
	return v, d.delimited()
}

// uint64 reads a non-negative integer (at most 19 digits: no overflow check needed).
func (d *fastDecoder) uint64(dst *uint64) bool {
	v, ok := d.digits(19)
	if ok {
		*dst = v
	}
	return ok
}

// int64 reads an integer of at most 18 digits.
func (d *fastDecoder) int64(dst *int64) bool {
	neg := d.consume('-')
	v, ok := d.digits(18)
	if !ok {
		return false
	}
	if neg {
		*dst = -int64(v)
	} else {
		*dst = int64(v)
	}
	return true
}

// int reads an integer of at most 9 digits (fits every int).
func (d *fastDecoder) int(dst *int) bool {
	neg := d.consume('-')
	v, ok := d.digits(9)
	if !ok {
		return false
	}
	if neg {
		*dst = -int(v)
	} else {
		*dst = int(v)
	}
	return true
}

func (d *fastDecoder) bool(dst *bool) bool {
	rest := d.data[d.pos:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		d.pos += 4
		*dst = true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		d.pos += 5
		*dst = false
	default:
		return false
	}
	return d.delimited()
}

// raw reads an object or array, validated, into a copy (as json.RawMessage's
// UnmarshalJSON keeps it: the bytes as they are).
func (d *fastDecoder) raw(dst *json.RawMessage) bool {
	if d.pos >= len(d.data) || (d.data[d.pos] != '{' && d.data[d.pos] != '[') {
		return false
	}
	start, depth, inString := d.pos, 0, false
	for i := start; i < len(d.data); i++ {
		c := d.data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				v := d.data[start : i+1]
				if !json.Valid(v) {
					return false
				}
				*dst = append(json.RawMessage(nil), v...)
				d.pos = i + 1
				return true
			}
		}
	}
	return false
}

// message decodes key, one of Message's fields, into m; false for any other key.
func (d *fastDecoder) message(m *Message, key []byte) bool {
	switch string(key) {
	case "chatId":
		return d.string(&m.ChatID)
	case "seq":
		return d.uint64(&m.Seq)
	case "messageId":
		return d.string(&m.MessageID)
	case "senderId":
		return d.string(&m.SenderID)
	case "content":
		return d.string(&m.Content)
	case "messageType":
		return d.string(&m.MessageType)
	case "timestamp":
		return d.int64(&m.Timestamp)
	case "replyTo":
		return d.string(&m.ReplyTo)
	case "refId":
		return d.string(&m.RefID)
	case "meta":
		return d.raw(&m.Meta)
	case "edited":
		return d.bool(&m.Edited)
	case "deleted":
		return d.bool(&m.Deleted)
	case "stateSeq":
		return d.uint64(&m.StateSeq)
	case "expiresAt":
		return d.int64(&m.ExpiresAt)
	}
	return false
}

// frame decodes key, one of Frame's scalar fields, into f; false for any other key.
func (d *fastDecoder) frame(f *Frame, key []byte) bool {
	switch string(key) {
	case "type":
		return d.string(&f.Type)
	case "id":
		return d.string(&f.ID)
	case "token":
		return d.string(&f.Token)
	case "resume":
		return d.bool(&f.Resume)
	case "chatId":
		return d.string(&f.ChatID)
	case "seq":
		return d.uint64(&f.Seq)
	case "messageId":
		return d.string(&f.MessageID)
	case "senderId":
		return d.string(&f.SenderID)
	case "content":
		return d.string(&f.Content)
	case "messageType":
		return d.string(&f.MessageType)
	case "timestamp":
		return d.int64(&f.Timestamp)
	case "replyTo":
		return d.string(&f.ReplyTo)
	case "refId":
		return d.string(&f.RefID)
	case "meta":
		return d.raw(&f.Meta)
	case "emoji":
		return d.string(&f.Emoji)
	case "remove":
		return d.bool(&f.Remove)
	case "edited":
		return d.bool(&f.Edited)
	case "deleted":
		return d.bool(&f.Deleted)
	case "stateSeq":
		return d.uint64(&f.StateSeq)
	case "expiresAt":
		return d.int64(&f.ExpiresAt)
	case "duplicate":
		return d.bool(&f.Duplicate)
	case "before":
		return d.uint64(&f.Before)
	case "after":
		// A pointer, as encoding/json sets it: present (even 0) is non-nil.
		var v uint64
		if !d.uint64(&v) {
			return false
		}
		f.After = &v
		return true
	case "limit":
		return d.int(&f.Limit)
	case "hasMore":
		return d.bool(&f.HasMore)
	case "state":
		return d.string(&f.State)
	case "userId":
		return d.string(&f.UserID)
	case "delivered":
		return d.uint64(&f.Delivered)
	case "read":
		return d.uint64(&f.Read)
	case "status":
		return d.string(&f.Status)
	case "lastSeen":
		return d.int64(&f.LastSeen)
	case "devices":
		return d.int(&f.Devices)
	case "connId":
		return d.string(&f.ConnID)
	case "serverTime":
		return d.int64(&f.ServerTime)
	case "heartbeatMs":
		return d.int64(&f.HeartbeatMs)
	case "afterMs":
		return d.int64(&f.AfterMs)
	case "code":
		var s string
		ok := d.string(&s)
		f.Code = Code(s)
		return ok
	case "message":
		return d.string(&f.Message)
	case "retry":
		return d.bool(&f.Retry)
	}
	return false
}

// member decodes the value of key (the decoder is at its first byte) into t.
func (d *fastDecoder) member(t *fastTarget, key []byte) bool {
	switch {
	case t.frame != nil:
		return d.frame(t.frame, key)
	case t.typ != nil && string(key) == "type":
		return d.string(t.typ)
	}
	return d.message(t.msg, key)
}

// decodeFrameFast decodes data into f (zero) on the fast path; false: decode it with
// encoding/json instead, from a zero Frame (f may hold part of the input).
func decodeFrameFast(data []byte, f *Frame) bool {
	d := fastDecoder{data: data}
	return d.object(&fastTarget{frame: f})
}

// decodeMessageFast decodes data, a Message (typ nil) or a message frame (its "type"
// goes to typ), into m (zero) on the fast path; false: decode it with encoding/json
// instead, from a zero value (m may hold part of the input).
func decodeMessageFast(data []byte, m *Message, typ *string) bool {
	d := fastDecoder{data: data}
	return d.object(&fastTarget{msg: m, typ: typ})
}
