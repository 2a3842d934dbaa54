package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/storetest"
	"github.com/stretchr/testify/require"
)

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "natter.db"))
		require.NoError(t, err)
		return s
	})
}

// TestSQLiteConformanceIndexEveryAppend runs the suite with the search index fed
// at every append instead of in bulk, so edits, deletes, expiry and erasure meet
// messages that are indexed already (the default suite mostly meets pending ones).
func TestSQLiteConformanceIndexEveryAppend(t *testing.T) {
	defer store.SetSQLiteIndexBatch(1)()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "natter.db"))
		require.NoError(t, err)
		return s
	})
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "natter.db")
	s, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	_, err = s.SetReadState(ctx, "c", "u", 1, 1)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s, err = store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	rs, err := s.GetReadState(ctx, "c", "u")
	require.NoError(t, err)
	require.EqualValues(t, 1, rs.Read)
}
