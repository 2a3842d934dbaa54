package notifier

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestSenderBudget: a sender gets exactly its burst, concurrently or not; a token
// given back (a window another worker opened first) can be taken again; senders
// do not share buckets; rate 0 is unlimited.
func TestSenderBudget(t *testing.T) {
	b := newSenderBudget(0.0001, 10)
	var ok atomic.Int64
	var undos []func()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if took, undo := b.take("mallory"); took {
				ok.Add(1)
				mu.Lock()
				undos = append(undos, undo)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || b.suppressed.Load() != 90 {
		t.Fatalf("100 concurrent takes: %d allowed, %d suppressed; want 10 and 90", ok.Load(), b.suppressed.Load())
	}
	undos[0]()
	undos[1]()
	for i := range 3 {
		took, _ := b.take("mallory")
		if took != (i < 2) {
			t.Fatalf("take %d after two undos: %v", i, took)
		}
	}
	if took, _ := b.take("alice"); !took {
		t.Fatal("alice's bucket is her own")
	}
	free := newSenderBudget(0, 0)
	for range 1000 {
		if took, undo := free.take("x"); !took || undo == nil {
			t.Fatal("rate 0 is unlimited")
		}
	}
}
