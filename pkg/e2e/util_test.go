package e2e

import (
	"encoding/json"

	"github.com/nats-io/nats.go/jetstream"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonSubjectFilter(subj string) jetstream.StreamInfoOpt { return jetstream.WithSubjectFilter(subj) }
