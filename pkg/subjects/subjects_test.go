package subjects

import "testing"

// TestInOrigin: a stored ingress subject tells the chat and who published it; the
// layout from before origins existed counts as a gateway's, anything else is not an
// ingress subject.
func TestInOrigin(t *testing.T) {
	s := New("", 4)
	for _, tc := range []struct {
		stored, chat, origin string
		ok                   bool
	}{
		{s.InStored("c1", OriginGateway), "c1", OriginGateway, true},
		{s.InStored("c1", OriginService), "c1", OriginService, true},
		{s.InPartition(s.Partition("c1")) + ".c1", "c1", OriginGateway, true},
		{s.InPartition(1) + ".c1.admin", "", "", false},
		{s.InPartition(1) + ".c1.svc.x", "", "", false},
		{"natter.log.c1", "", "", false},
		{"other.in.p.1.c1.svc", "", "", false},
	} {
		chat, origin, ok := s.InOrigin(tc.stored)
		if chat != tc.chat || origin != tc.origin || ok != tc.ok {
			t.Errorf("InOrigin(%q) = %q, %q, %v; want %q, %q, %v", tc.stored, chat, origin, ok, tc.chat, tc.origin, tc.ok)
		}
	}
}

// TestTransformPartitions: the partition count reads back from the transform
// InTransformDest makes, and anything else reads as 0 (unknown).
func TestTransformPartitions(t *testing.T) {
	for _, p := range []int{1, 2, 16, 1024} {
		if got := TransformPartitions(New("acme", p).InTransformDest()); got != p {
			t.Errorf("%d partitions read back as %d", p, got)
		}
	}
	for _, dest := range []string{"", "natter.in.p.{{wildcard(1)}}", "natter.in.p.{{partition(x,2)}}", "natter.in.p.{{partition(16"} {
		if got := TransformPartitions(dest); got != 0 {
			t.Errorf("%q read as %d partitions", dest, got)
		}
	}
}
