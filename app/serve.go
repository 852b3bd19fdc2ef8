package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/locallibrary/locallibrary/addrlimit"
	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/memcachestore"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/routes"
)

// serve runs the website until ctx is cancelled, then drains and shuts
// down: /readyz fails first so the load balancer stops sending traffic,
// in-flight requests finish, then the clients close.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	logger.Info("starting", cfg.Attrs()...)
	db, closeDB, err := openCatalog(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()

	newSessions, err := addrlimit.New(cfg.NewSessionsPerMinute, cfg.NewSessionsBurst, newSessionAddresses)
	if err != nil {
		return err
	}
	deps := routes.Deps{
		AdmitNewSession:  newSessions.Allow,
		Catalog:          repository.NewCatalog(db),
		Logger:           logger,
		CountsTTL:        cfg.CountsTTL,
		CountsStaleLimit: cfg.CountsStaleLimit,
		QueryTimeout:     cfg.QueryTimeout,
		Draining:         new(atomic.Bool),
		ProxyHeader:      cfg.ProxyHeader,
		TrustedProxies:   cfg.TrustedProxies,
		Metrics:          routes.NewMetrics(),
		Sessions: routes.SessionOptions{
			Lifetime:             cfg.SessionLifetime,
			ExpireAtBrowserClose: cfg.SessionExpireAtBrowserClose,
			SaveEveryRequest:     cfg.SessionSaveEveryRequest,
			CookieSecure:         cfg.CookieSecure,
		},
	}
	deps.Metrics.Registry().MustRegister(
		collectors.NewDBStatsCollector(db.DB, "locallibrary"),
		collectors.NewBuildInfoCollector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if len(cfg.MemcachedServers) > 0 {
		store, err := memcachestore.New(memcachestore.Config{
			Servers:      cfg.MemcachedServers,
			Timeout:      cfg.MemcachedTimeout,
			MaxConns:     cfg.MemcachedMaxConns,
			KeyPrefix:    cfg.MemcachedKeyPrefix,
			Replicas:     cfg.SessionReplicas,
			RepairTTL:    cfg.SessionLifetime,
			ResolveEvery: cfg.MemcachedResolveEvery,
			Observe:      deps.Metrics.ObserveSessionOp,
		})
		if err != nil {
			return err
		}
		defer store.Close()
		if err := store.Ping(); err != nil {
			// Not fatal: the site serves without sessions and recovers
			// when memcached comes back.
			logger.Warn("memcached not answering at start", "err", err)
		}
		deps.SessionStorage, deps.Visits = store, store
		logger.Info("sessions", "backend", "memcached", "servers", cfg.MemcachedServers)
	} else {
		logger.Info("sessions", "backend", "memory", "note", "single process only; set LOCALLIBRARY_MEMCACHED_SERVERS for replicas")
	}

	server, err := routes.New(deps)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	served := make(chan error, 1)
	go func() { served <- server.Listener(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	deps.Draining.Store(true)
	logger.Info("draining", "for", cfg.ShutdownDrain.String())
	time.Sleep(cfg.ShutdownDrain)
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	if err := server.ShutdownWithTimeout(cfg.ShutdownTimeout); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-served
	logger.Info("stopped")
	return nil
}

var _ fiber.Storage = (*memcachestore.Storage)(nil)

// newSessionAddresses is how many client addresses the new-session limiter
// remembers (a few hundred bytes each); an address forgotten starts again
// with a full allowance.
const newSessionAddresses = 10_000
