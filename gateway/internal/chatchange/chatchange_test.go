package chatchange

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		seq    uint64
		status int
	}{{0, http.StatusAccepted}, {7, http.StatusOK}} {
		rec := httptest.NewRecorder()
		Write(rec, http.StatusOK, Answer{ChatID: "c1", MessageID: "m1", Seq: tc.seq})
		require.Equal(t, tc.status, rec.Code)
		var a Answer
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
		require.True(t, a.Changed)
		require.Equal(t, tc.seq, a.Seq)
	}
}
