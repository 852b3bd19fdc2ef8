package routes

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the service's Prometheus instruments. app registers the
// process-wide collectors (database pool, build info) in the same registry.
type Metrics struct {
	registry      *prometheus.Registry
	requests      *prometheus.HistogramVec
	countsCache   *prometheus.CounterVec
	pageCache     *prometheus.CounterVec
	sessionOps    *prometheus.HistogramVec
	sessionErrors *prometheus.CounterVec
	visitsUnavail prometheus.Counter
	overCap       prometheus.Counter
}

// NewMetrics creates the instruments in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "locallibrary_http_request_duration_seconds",
			Help:    "HTTP requests by route pattern, method and status, with their latency.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "status"}),
		countsCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "locallibrary_counts_cache_total",
			Help: "Home-page counts lookups by result: hit, miss (refreshed), stale (served while MySQL failed) or error.",
		}, []string{"result"}),
		pageCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "locallibrary_page_cache_total",
			Help: "Catalog page lookups by result: hit, miss (loaded), stale (served while MySQL failed) or error.",
		}, []string{"result"}),
		sessionOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "locallibrary_session_store_duration_seconds",
			Help:    "Session-store (memcached) operations by kind, with their latency.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, []string{"op"}),
		sessionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "locallibrary_session_store_errors_total",
			Help: "Session-store (memcached) operations that failed, by kind.",
		}, []string{"op"}),
		visitsUnavail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "locallibrary_visit_count_unavailable_total",
			Help: "Home pages served without a visit count because the session store failed.",
		}),
		overCap: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "locallibrary_http_over_cap_connections_total",
			Help: "Connections answered 503 because the replica had LOCALLIBRARY_HTTP_MAX_CONNS open.",
		}),
	}
	m.registry.MustRegister(m.requests, m.countsCache, m.pageCache, m.sessionOps, m.sessionErrors, m.visitsUnavail, m.overCap)
	return m
}

// Registry is where app adds process-wide collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// ObserveSessionOp records one session-store operation; memcachestore
// calls it for every operation.
func (m *Metrics) ObserveSessionOp(op string, err error, d time.Duration) {
	m.sessionOps.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.sessionErrors.WithLabelValues(op).Inc()
	}
}

// Handler serves the metrics for Prometheus. app serves it on a listener
// of its own, never on the public one.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// observeRequests finishes every routed answer and times it for the
// metrics and, at debug level, the log. Errors are rendered and the
// caching policy applied here rather than after the chain, so the status
// recorded is the one the browser gets (a 304 included).
func observeRequests(m *Metrics, logger *slog.Logger, ips clientIPs) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		if err := c.Next(); err != nil {
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}
		applyCachePolicy(c)
		took := time.Since(start)
		// The last route run is a middleware's when no route matched.
		route := "unmatched"
		if r := c.Route(); r != nil && routeMatches(r.Path, c.Path()) {
			route = r.Path
		}
		status := c.Response().StatusCode()
		method := c.Method()
		if c.Locals(headLocal{}) == true {
			method = fiber.MethodHead
		}
		m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Observe(took.Seconds())
		if logger.Enabled(context.Background(), slog.LevelDebug) {
			// Copies, as the error handler's: the record may outlive the request.
			logger.Debug("request", "method", strings.Clone(c.Method()), "path", strings.Clone(c.Path()), "route", route, "status", status,
				"took", took, "request_id", requestID(c), proxyRequestID(c), "client_ip", ips.of(c))
		}
		return nil
	}
}

// methodLabel gives the method as a string of its own: c.Method() points
// into Fiber's reused request memory, and a label value is kept for the
// life of the process. Unknown methods share one label.
func methodLabel(method string) string {
	for _, known := range knownMethods {
		if method == known {
			return known
		}
	}
	return "OTHER"
}

var knownMethods = []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut,
	fiber.MethodDelete, fiber.MethodPatch, fiber.MethodOptions}
