// e2e-stargz-grpc serves the stargz snapshotter to containerd over gRPC on a unix socket: the daemon
// Debian does not ship (its stargz-snapshotter package has only ctr-remote), wired from the library in
// golang-github-containerd-stargz-snapshotter-dev. stargz-up.sh builds it offline in GOPATH mode.
//
//	e2e-stargz-grpc --address SOCKET --root DIR [--config config.toml] [--log-level info]
//
// The config file has the schema of upstream's /etc/containerd-stargz-grpc/config.toml. Registry
// credentials come from the docker config. SIGTERM or SIGINT closes the snapshotter, which unmounts
// its FUSE layers, and exits.
package main

import (
	"context"
	"flag"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/BurntSushi/toml"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/stargz-snapshotter/service"
	"github.com/containerd/stargz-snapshotter/service/keychain/dockerconfig"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

func main() {
	address := flag.String("address", "/tmp/e2e/stargz/stargz.sock", "unix socket to serve gRPC on")
	root := flag.String("root", "/tmp/e2e/stargz/root", "directory for snapshots and caches")
	configFile := flag.String("config", "", "TOML config (upstream config.toml schema)")
	logLevel := flag.String("log-level", "info", "logrus level")
	flag.Parse()

	level, err := logrus.ParseLevel(*logLevel)
	if err != nil {
		logrus.Fatalf("--log-level: %v", err)
	}
	logrus.SetLevel(level)
	ctx := log.WithLogger(context.Background(), log.L)

	var config service.Config
	if *configFile != "" {
		if _, err := toml.DecodeFile(*configFile, &config); err != nil {
			log.G(ctx).WithError(err).Fatalf("reading %s", *configFile)
		}
	}
	sn, err := service.NewStargzSnapshotterService(ctx, *root, &config,
		service.WithCredsFuncs(dockerconfig.NewDockerconfigKeychain(ctx)))
	if err != nil {
		log.G(ctx).WithError(err).Fatal("starting the stargz snapshotter")
	}
	listener := listen(ctx, *address)
	server := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(server, snapshotservice.FromSnapshotter(sn))
	go closeOnSignal(ctx, server, sn)

	log.G(ctx).WithField("address", *address).WithField("root", *root).Info("serving")
	if err := server.Serve(listener); err != nil {
		log.G(ctx).WithError(err).Fatal("serving gRPC")
	}
}

// listen takes over the socket path: a socket file left by a killed daemon would refuse the bind.
func listen(ctx context.Context, address string) net.Listener {
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		log.G(ctx).WithError(err).Fatal("creating the socket directory")
	}
	if err := os.Remove(address); err != nil && !os.IsNotExist(err) {
		log.G(ctx).WithError(err).Fatal("removing the old socket")
	}
	listener, err := net.Listen("unix", address)
	if err != nil {
		log.G(ctx).WithError(err).Fatal("listening")
	}
	return listener
}

func closeOnSignal(ctx context.Context, server *grpc.Server, sn snapshots.Snapshotter) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	log.G(ctx).Info("closing: unmounting layers")
	server.Stop()
	if err := sn.Close(); err != nil {
		log.G(ctx).WithError(err).Warn("closing the snapshotter")
	}
	os.Exit(0)
}
