package httpx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func TestBodyDecode(t *testing.T) {
	type req struct {
		Name string `json:"name"`
	}
	b := Body{MaxBytes: 32, Timeout: time.Second}
	for _, tc := range []struct {
		body string
		code protocol.Code // "" for success
	}{
		{`{"name":"a"}`, ""},
		{`{"name":"a"} `, ""},
		{`{"name":"a","x":1}`, protocol.CodeBadRequest}, // unknown field
		{`{"name":"a"}{}`, protocol.CodeBadRequest},     // trailing data
		{`{"name":`, protocol.CodeBadRequest},
		{`{"name":"` + strings.Repeat("a", 40) + `"}`, protocol.CodeTooLarge},
	} {
		t.Run(tc.body, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			var v req
			err := b.Decode(httptest.NewRecorder(), r, &v)
			if tc.code == "" {
				require.NoError(t, err)
				require.Equal(t, "a", v.Name)
				return
			}
			var pe *protocol.Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tc.code, pe.Code, pe.Message)
		})
	}
}

func TestFailWritesTheDocumentedErrorBody(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   protocol.Code
	}{
		{protocol.Errorf(protocol.CodeNotMember, "not a member"), http.StatusForbidden, protocol.CodeNotMember},
		{StoreUnavailable(store.ErrNotSupported), http.StatusNotFound, protocol.CodeNotFound},
		{StoreUnavailable(store.ErrNotFound), http.StatusServiceUnavailable, protocol.CodeUnavailable},
		{&protocol.Error{Code: protocol.CodeRateLimited, Message: "slow down", RetryAfter: 1500 * time.Millisecond}, http.StatusTooManyRequests, protocol.CodeRateLimited},
		{json.Unmarshal([]byte("{"), new(any)), http.StatusInternalServerError, protocol.CodeInternal}, // not a protocol error
	} {
		rec := httptest.NewRecorder()
		Fail(zap.NewNop(), rec, tc.err)
		require.Equal(t, tc.status, rec.Code)
		var b ErrorBody
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b))
		require.Equal(t, tc.code, b.Error.Code)
		require.Equal(t, tc.code.Retryable(), b.Error.Retry)
		if tc.code == protocol.CodeRateLimited {
			require.Equal(t, "2", rec.Header().Get("Retry-After"))
			require.Equal(t, int64(1500), b.Error.RetryAfterMs)
		}
	}
}
