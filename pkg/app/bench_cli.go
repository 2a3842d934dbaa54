package app

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/natter-chat/natter/pkg/bench"
	"github.com/natter-chat/natter/pkg/logging"
	"github.com/natter-chat/natter/pkg/natsutil"
)

// benchCmd runs "natter bench": the load generator, able to start this process's
// own natter for --embedded.
func benchCmd(args []string, stdout, stderr io.Writer) error {
	return bench.Main(args, stdout, stderr, benchServer)
}

// benchServer is bench's Starter: every role in this process, an embedded NATS
// server on a free loopback port, SQLite in dataDir, the gateway on a free port
// (plus gateways-1 gateway-only instances sharing the NATS server and the store),
// no admin port, warn-level logs. args are serve flags applied last.
func benchServer(ctx context.Context, dataDir string, gateways int, args []string) (*bench.Server, error) {
	base := []string{"-data-dir", dataDir, "-nats.listen", "127.0.0.1:-1", "-gateway.listen", "127.0.0.1:0",
		"-admin.listen=", "-log.level", "warn", "-gateway.max-body-bytes", "8388608", "-gateway.web-chat=false"}
	cfg, _, err := Load("bench", append(base, args...))
	if err != nil {
		return nil, err
	}
	log, err := logging.New(cfg.Log)
	if err != nil {
		return nil, err
	}
	a, err := Start(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	apps := []*App{a}
	closeAll := func() error {
		var errs []error
		for i := len(apps) - 1; i >= 0; i-- {
			errs = append(errs, apps[i].Close())
		}
		return errors.Join(errs...)
	}
	srv := &bench.Server{WSURLs: []string{"ws://" + a.GatewayAddr().String() + "/ws"}, NATSURL: a.NATS.ClientURL(),
		DataDir: dataDir, Close: closeAll}
	for i := 1; i < gateways; i++ {
		g := *cfg
		g.Roles = []string{RoleGateway}
		g.NATS.URL = srv.NATSURL
		g.NATS.User, g.NATS.PasswordFile = natsutil.UserGateway, natsutil.PasswordFile(a.NATSCredsDir, natsutil.UserGateway)
		g.Gateway.Listen = "127.0.0.1:0"
		ga, err := Start(ctx, &g, log.Named(fmt.Sprintf("gateway%d", i+1)))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("gateway %d: %w", i+1, err)
		}
		apps = append(apps, ga)
		srv.WSURLs = append(srv.WSURLs, "ws://"+ga.GatewayAddr().String()+"/ws")
	}
	return srv, nil
}
