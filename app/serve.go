package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/internal/addrlimit"
	"github.com/locallibrary/locallibrary/internal/memcachestore"
	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/routes"
)

// serve runs the website until ctx is cancelled, then drains and shuts
// down: /readyz fails first so the load balancer stops sending traffic,
// in-flight requests finish, then the clients close.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	logger.Info("starting", cfg.Attrs()...)
	// A soft limit keeps the heap near what is live rather than twice it,
	// so a replica stays within its memory at 256 connections; config
	// leaves it 0 when GOMEMLIMIT, the runtime's own, is set.
	if cfg.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMiB) << 20)
	}
	sessionOpts := sessionOptions(cfg)
	newSessions, err := addrlimit.New(cfg.NewSessionsPerMinute, cfg.NewSessionsBurst, newSessionAddresses)
	if err != nil {
		return err
	}
	sessionOpts.Admit = admitNewSessions(newSessions, routes.ClientAddr(cfg.ProxyHeader, cfg.TrustedProxies))
	// A signal while starting (Ctrl-C during the embedded engine's
	// migration, say) makes what runs then fail: a quiet stop, no error.
	startFailed := func(err error) error {
		if ctx.Err() != nil {
			logger.Info("stopped while starting", "detail", err.Error())
			return nil
		}
		return err
	}
	db, closeDB, err := openCatalog(ctx, cfg, logger)
	if err != nil {
		return startFailed(err)
	}
	defer closeDB()

	// Counts are read from the shared row at most half the TTL old and kept
	// here half the TTL: never older than the TTL, plus a count.
	countsAge := cfg.CountsTTL / 2
	deps := routes.Deps{
		Catalog: repository.NewCatalog(db, repository.CatalogOptions{
			CountsMaxAge: countsAge, ListMarksTTL: cfg.PageCacheTTL}),
		PageCacheBytes:   int64(cfg.PageCacheMiB) << 20,
		PageCacheTTL:     cfg.PageCacheTTL,
		DBPoolSize:       cfg.DBMaxOpenConns,
		Logger:           logger,
		CountsTTL:        countsAge,
		CountsStaleLimit: cfg.CountsStaleLimit,
		QueryTimeout:     cfg.QueryTimeout,
		Draining:         new(atomic.Bool),
		ProxyHeader:      cfg.ProxyHeader,
		TrustedProxies:   cfg.TrustedProxies,
		BodyLimit:        cfg.BodyLimit,
		Metrics:          routes.NewMetrics(),
	}
	deps.Metrics.Registry().MustRegister(
		collectors.NewDBStatsCollector(db.DB, "locallibrary"),
		collectors.NewBuildInfoCollector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	store, closeStore, err := openSessionStore(cfg, logger, deps.Metrics.ObserveSessionOp)
	if err != nil {
		return err
	}
	defer closeStore()
	if deps.Sessions, err = session.New(store, sessionOpts); err != nil {
		return err
	}

	server, err := routes.New(deps)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return startFailed(fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err))
	}
	metricsLn, err := lc.Listen(ctx, "tcp", cfg.MetricsAddr)
	if err != nil {
		_ = ln.Close()
		return startFailed(fmt.Errorf("listen on %s: %w", cfg.MetricsAddr, err))
	}
	ln = capConnections(server, ln, cfg.HTTPMaxConns)
	metrics := metricsServer(deps.Metrics)
	defer metrics.Close()
	served := make(chan error, 2)
	go func() { served <- server.Listener(ln) }()
	go func() { served <- metrics.Serve(metricsLn) }()
	logger.Info("listening", "addr", ln.Addr().String(), "metrics_addr", metricsLn.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	deps.Draining.Store(true)
	logger.Info("draining", "for", cfg.ShutdownDrain.String())
	time.Sleep(cfg.ShutdownDrain)
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	if err := server.ShutdownWithTimeout(cfg.ShutdownTimeout); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: %w", err)
		}
		// Requests still being read or served are cut when the process
		// exits: say so, or a client's lost request has no trace.
		logger.Warn("shutdown timeout passed with connections still open; they are cut",
			"timeout", cfg.ShutdownTimeout.String(), "open_connections", server.Server().GetOpenConnectionsCount())
	}
	<-served
	logger.Info("stopped")
	return nil
}

// newSessionAddresses is how many busy prefixes per level the new-session
// limiter's fixed tables hold (16 bytes each, 0.8 MB in all) before shared
// slots start to make its limits stricter; it never forgets a prefix.
const newSessionAddresses = 10_000

// admitNewSessions asks l whether the request's client address may start
// another session (the session package asks at most once per request).
func admitNewSessions(l *addrlimit.Limiter, clientAddr func(*fiber.Ctx) string) func(*fiber.Ctx) bool {
	return func(c *fiber.Ctx) bool { return l.Allow(clientAddr(c)) }
}

// metricsServer serves /metrics alone, on a listener apart from the site:
// Prometheus reaches it inside the cluster, the Ingress never does.
func metricsServer(m *routes.Metrics) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
}

// openSessionStore connects to LOCALLIBRARY_MEMCACHED_SERVERS, or keeps
// sessions in the process's memory when none are set.
func openSessionStore(cfg config.Config, logger *slog.Logger, observe func(string, error, time.Duration)) (session.Store, func(), error) {
	if len(cfg.MemcachedServers) == 0 {
		logger.Info("sessions", "backend", "memory", "note", "single process only; set LOCALLIBRARY_MEMCACHED_SERVERS for replicas")
		return session.NewMemoryStore(), func() {}, nil
	}
	store, err := memcachestore.New(memcachestore.Config{
		Servers:      cfg.MemcachedServers,
		Timeout:      cfg.MemcachedTimeout,
		MaxConns:     cfg.MemcachedMaxConns,
		KeyPrefix:    cfg.MemcachedKeyPrefix,
		Replicas:     cfg.SessionReplicas,
		RepairTTL:    cfg.SessionLifetime,
		ResolveEvery: cfg.MemcachedResolveEvery,
		Place:        session.Placement,
		Observe:      observe,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := store.Ping(); err != nil {
		// Not fatal: the site serves without sessions and recovers when
		// memcached comes back.
		logger.Warn("memcached not answering at start", "err", err)
	}
	logger.Info("sessions", "backend", "memcached", "servers", cfg.MemcachedServers)
	return store, func() { _ = store.Close() }, nil
}

// sessionOptions are the session settings of cfg.
func sessionOptions(cfg config.Config) session.Options {
	return session.Options{
		Lifetime:             cfg.SessionLifetime,
		FirstVisitLifetime:   cfg.SessionFirstVisitLifetime,
		ExpireAtBrowserClose: cfg.SessionExpireAtBrowserClose,
		SaveEveryRequest:     cfg.SessionSaveEveryRequest,
		CookieSecure:         cfg.CookieSecure,
		Secret:               []byte(cfg.SecretKey),
	}
}
