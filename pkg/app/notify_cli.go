package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/pkg/logging"
	"github.com/natter-chat/natter/pkg/natsutil"
	"go.uber.org/zap"
)

const notifyUsage = `natter notify replay [serve flags]

Re-sends every notification kept in the dead-letter stream NATTER_DLQ (webhook
deliveries that failed every attempt) to notifier.webhook-url, with the notifier's
attempts and backoff. Each one delivered is removed from the stream; each that fails
again stays for the next replay. It takes the serve flags (or YAML/env) for NATS and
the notifier; run it against the cluster's nats.url, or, with the embedded server,
while natter is stopped (it opens the data directory itself).
`

// notifyCmd runs "natter notify <action>".
func notifyCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "replay" && args[0] != "replay-dlq") {
		fmt.Fprint(stderr, notifyUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return errors.New("notify: expected an action: replay")
	}
	cfg, _, err := Load("notify replay", args[1:])
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := ReplayNotifications(ctx, cfg, log)
	fmt.Fprintf(stdout, "replayed: %d delivered, %d failed again (kept), %d malformed (kept)\n", res.Delivered, res.Failed, res.Skipped)
	return err
}

// ReplayNotifications connects to cfg's NATS (starting the embedded server on its
// data directory when no nats.url is set) and replays NATTER_DLQ (notifier.Replay).
func ReplayNotifications(ctx context.Context, cfg *Config, log *zap.Logger) (notifier.ReplayResult, error) {
	var res notifier.ReplayResult
	var ns *natsutil.Embedded
	if cfg.NATS.URL == "" {
		var err error
		e, err := natsutil.StartEmbedded(&cfg.NATS, cfg.DataDir, log)
		if err != nil {
			return res, err
		}
		ns = e
		defer e.Server.Shutdown()
	}
	nc, err := natsutil.Connect(&cfg.NATS, ns, "natter notify replay", natsutil.UserAdmin, nil)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	return notifier.Replay(ctx, cfg.Notifier, js, cfg.NATS.Subjects(), log)
}
