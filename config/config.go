// Package config loads the service's settings from LOCALLIBRARY_* environment
// variables (and the runtime's GOMEMLIMIT) into one struct, with every
// default, reporting every problem at once.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/locallibrary/locallibrary/internal/session"
)

// Prefix starts the name of every variable of the service's own.
const Prefix = "LOCALLIBRARY_"

// Config is everything the service can be told from outside.
type Config struct {
	HTTPAddr    string // address to listen on; loopback unless set (the image and manifests set ":8080")
	MetricsAddr string // address of the /metrics listener, kept off the public one
	// HTTPMaxConns caps the site listener's open connections: the next few
	// get the site's 503 page, any beyond those are refused at once, so a
	// flood of idle connections cannot take the replica's memory.
	HTTPMaxConns int
	BodyLimit    int // bytes a request body may have; larger ones get 413 unread

	MySQLDSN         string // empty: the embedded engine, where the build has it
	DBMaxOpenConns   int
	QueryTimeout     time.Duration // deadline given to every request's queries and cache calls
	CountsTTL        time.Duration // the oldest the home page's counts are (plus one count's time)
	CountsStaleLimit time.Duration // how long the last counts (and cached pages) are served while MySQL is down
	PageCacheMiB     int           // bound of the rendered catalog pages kept per replica; 0: no cache
	PageCacheTTL     time.Duration // the oldest a catalog page (or a list's page boundaries) is served
	// MemoryLimitMiB is the soft memory limit serve gives the Go runtime;
	// 0: none from the service, because LOCALLIBRARY_MEMORY_LIMIT_MIB is 0
	// or because GOMEMLIMIT is set (the runtime applies that one itself).
	MemoryLimitMiB int
	GOMEMLIMIT     string // the runtime's own soft limit, as set, for the startup log

	MemcachedServers  []string // empty: sessions in process memory
	MemcachedTimeout  time.Duration
	MemcachedMaxConns int
	// NewSessionsPerMinute and NewSessionsBurst ration the sessions stored
	// for first visits per client address (a token bucket each), so one
	// address cannot evict everybody's sessions from memcached.
	NewSessionsPerMinute  int
	NewSessionsBurst      int
	MemcachedResolveEvery time.Duration
	MemcachedKeyPrefix    string
	SessionReplicas       int // memcached nodes each session is written to

	SessionLifetime             time.Duration
	SessionFirstVisitLifetime   time.Duration // a new session's life until its browser comes back
	SessionExpireAtBrowserClose bool
	SessionSaveEveryRequest     bool
	CookieSecure                bool
	// SecretKey signs the CSRF tokens; replicas must share it. Load
	// requires it with a MySQL DSN or memcached servers, and makes one up
	// for the single-process default (embedded database, sessions in
	// memory); LoadForCommand leaves it as set.
	SecretKey          string
	secretKeyGenerated bool

	ShutdownDrain   time.Duration // /readyz says 503 this long before the listener stops
	ShutdownTimeout time.Duration // in-flight requests get this long to finish

	TrustedProxies []netip.Prefix // peers whose ProxyHeader is believed
	ProxyHeader    string

	LogLevel slog.Level
}

// DefaultHTTPMaxConns is the connection cap unless set: at about 20 KiB
// each (fasthttp's buffers and a goroutine) 1,024 open connections hold
// some 20 MiB, which a 128 MiB replica has room for beside its heap.
const DefaultHTTPMaxConns = 1024

// MemoryBesideCacheMiB is what a replica's live heap holds beside its page
// cache at 256 connections (measured: about 11 MiB, 4 of them fasthttp's
// read buffers), with room for the garbage collector to work.
const MemoryBesideCacheMiB = 32

// Load reads the configuration of the web server through getenv (os.Getenv
// in production) and returns every invalid setting in one joined error.
func Load(getenv func(string) string) (Config, error) { return load(getenv, true) }

// LoadForCommand is Load for the commands that keep no sessions (migrate,
// seed, rebuild): they need no LOCALLIBRARY_SECRET_KEY.
func LoadForCommand(getenv func(string) string) (Config, error) { return load(getenv, false) }

func load(getenv func(string) string, serving bool) (Config, error) {
	l := loader{getenv: getenv}
	cfg := Config{
		// Loopback, as Django's runserver: `go run .` is not on the network
		// until told to be.
		HTTPAddr:         l.str("HTTP_ADDR", "127.0.0.1:8080"),
		MetricsAddr:      l.str("METRICS_ADDR", "127.0.0.1:9090"),
		HTTPMaxConns:     l.intAtLeast("HTTP_MAX_CONNS", DefaultHTTPMaxConns, 1),
		BodyLimit:        l.intAtLeast("BODY_LIMIT", 8<<10, 1),
		MySQLDSN:         l.str("MYSQL_DSN", ""),
		DBMaxOpenConns:   l.intAtLeast("DB_MAX_OPEN_CONNS", 16, 1),
		QueryTimeout:     l.duration("QUERY_TIMEOUT", 2*time.Second),
		CountsTTL:        l.duration("COUNTS_TTL", 2*time.Second),
		CountsStaleLimit: l.duration("COUNTS_STALE_LIMIT", 10*time.Minute),
		PageCacheMiB:     l.intAtLeast("PAGE_CACHE_MIB", 16, 0),
		PageCacheTTL:     l.duration("PAGE_CACHE_TTL", 30*time.Second),
		MemoryLimitMiB:   l.intAtLeast("MEMORY_LIMIT_MIB", 52, 0),

		MemcachedServers:      l.list("MEMCACHED_SERVERS"),
		MemcachedTimeout:      l.duration("MEMCACHED_TIMEOUT", 250*time.Millisecond),
		MemcachedMaxConns:     l.intAtLeast("MEMCACHED_MAX_CONNS", 256, 1),
		MemcachedResolveEvery: l.duration("MEMCACHED_RESOLVE_EVERY", 30*time.Second),
		MemcachedKeyPrefix:    l.str("MEMCACHED_KEY_PREFIX", "ll:"),
		SessionReplicas:       l.intAtLeast("SESSION_REPLICAS", 1, 1),
		// An office of 50 behind one NAT arriving at once gets sessions; a
		// flood from one address gets 120 a minute after its first 100.
		NewSessionsPerMinute: l.intAtLeast("NEW_SESSIONS_PER_MINUTE", 120, 1),
		NewSessionsBurst:     l.intAtLeast("NEW_SESSIONS_BURST", 100, 1),

		SessionLifetime:             l.duration("SESSION_LIFETIME", 14*24*time.Hour), // Django's two weeks
		SessionFirstVisitLifetime:   l.duration("SESSION_FIRST_VISIT_LIFETIME", time.Hour),
		SessionExpireAtBrowserClose: l.boolean("SESSION_EXPIRE_AT_BROWSER_CLOSE", false),
		SessionSaveEveryRequest:     l.boolean("SESSION_SAVE_EVERY_REQUEST", false),
		CookieSecure:                l.boolean("COOKIE_SECURE", false),
		SecretKey:                   l.str("SECRET_KEY", ""),

		ShutdownDrain:   l.duration("SHUTDOWN_DRAIN", 5*time.Second),
		ShutdownTimeout: l.duration("SHUTDOWN_TIMEOUT", 10*time.Second),

		TrustedProxies: l.prefixes("TRUSTED_PROXIES"),
		ProxyHeader:    l.str("PROXY_HEADER", "X-Forwarded-For"),

		LogLevel: l.level("LOG_LEVEL", slog.LevelInfo),
	}
	if cfg.MySQLDSN != "" {
		if _, err := mysql.ParseDSN(cfg.MySQLDSN); err != nil {
			l.fail("MYSQL_DSN", "is not a valid go-sql-driver/mysql DSN (user:pass@tcp(host:3306)/db)")
		}
	}
	for _, s := range cfg.MemcachedServers {
		if _, port, ok := strings.Cut(s, ":"); !ok || port == "" {
			l.fail("MEMCACHED_SERVERS", fmt.Sprintf("entry %q is not host:port", s))
		}
	}
	if getenv(Prefix+"MEMCACHED_MAX_IDLE_CONNS") != "" {
		l.fail("MEMCACHED_MAX_IDLE_CONNS", "was replaced by LOCALLIBRARY_MEMCACHED_MAX_CONNS, a cap on all connections")
	}
	if overlap(cfg.MetricsAddr, cfg.HTTPAddr) {
		l.fail("METRICS_ADDR", "must differ from LOCALLIBRARY_HTTP_ADDR: /metrics is not for the public")
	}
	// GOMEMLIMIT is the runtime's own, read by it at start: when it is set,
	// LOCALLIBRARY_MEMORY_LIMIT_MIB has no effect.
	cfg.GOMEMLIMIT = strings.TrimSpace(getenv("GOMEMLIMIT"))
	if cfg.GOMEMLIMIT != "" {
		cfg.MemoryLimitMiB = 0
	}
	if cfg.MemoryLimitMiB > 0 && cfg.MemoryLimitMiB < cfg.PageCacheMiB+MemoryBesideCacheMiB {
		l.fail("MEMORY_LIMIT_MIB", fmt.Sprintf("must be 0 (none) or at least LOCALLIBRARY_PAGE_CACHE_MIB + %d (%d): below that the garbage collector would run without pause",
			MemoryBesideCacheMiB, cfg.PageCacheMiB+MemoryBesideCacheMiB))
	}
	if cfg.SessionReplicas > 2 {
		l.fail("SESSION_REPLICAS", "must be 1 or 2")
	}
	if len(cfg.MemcachedServers) > 0 && cfg.SessionReplicas > len(cfg.MemcachedServers) {
		l.fail("SESSION_REPLICAS", fmt.Sprintf("is %d but only %d memcached servers are listed", cfg.SessionReplicas, len(cfg.MemcachedServers)))
	}
	if cfg.SessionLifetime < time.Second {
		l.fail("SESSION_LIFETIME", "must be at least 1s")
	}
	if cfg.SessionFirstVisitLifetime < time.Second || cfg.SessionFirstVisitLifetime > cfg.SessionLifetime {
		l.fail("SESSION_FIRST_VISIT_LIFETIME", "must be at least 1s and at most LOCALLIBRARY_SESSION_LIFETIME")
	}
	switch {
	case cfg.SecretKey != "":
		if len(cfg.SecretKey) < session.MinSecretLen {
			l.fail("SECRET_KEY", fmt.Sprintf("is %d characters; use at least %d random ones", len(cfg.SecretKey), session.MinSecretLen))
		}
	case !serving:
		// The commands sign nothing.
	case cfg.MySQLDSN != "" || len(cfg.MemcachedServers) > 0:
		// Replicas: each would make up a key of its own, and a form
		// served by one would be refused by the next.
		l.fail("SECRET_KEY", fmt.Sprintf("is required with a MySQL DSN or memcached servers: "+
			"set the same random string of at least %d characters on every replica (e.g. openssl rand -base64 48)", session.MinSecretLen))
	default:
		// The single process: a key of its own, whose CSRF tokens last
		// as long as it runs.
		cfg.SecretKey, cfg.secretKeyGenerated = hex.EncodeToString(randomBytes(session.MinSecretLen)), true
	}
	for name, d := range map[string]time.Duration{
		"QUERY_TIMEOUT": cfg.QueryTimeout, "MEMCACHED_TIMEOUT": cfg.MemcachedTimeout,
		"COUNTS_TTL": cfg.CountsTTL, "COUNTS_STALE_LIMIT": cfg.CountsStaleLimit, "SHUTDOWN_TIMEOUT": cfg.ShutdownTimeout,
		"PAGE_CACHE_TTL": cfg.PageCacheTTL,
	} {
		if d <= 0 {
			l.fail(name, "must be more than 0")
		}
	}
	return cfg, errors.Join(l.errs...)
}

// overlap reports whether two listen addresses would take the same port on
// some interface: the same port, and the same host or either one all
// interfaces (":8080", "0.0.0.0:8080", "[::]:8080").
func overlap(a, b string) bool {
	hostA, portA, errA := net.SplitHostPort(a)
	hostB, portB, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return a == b
	}
	allInterfaces := func(h string) bool { ip := net.ParseIP(h); return h == "" || ip != nil && ip.IsUnspecified() }
	return portA == portB && (hostA == hostB || allInterfaces(hostA) || allInterfaces(hostB))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Go ≥ 1.24
	return b
}

// Attrs describes the configuration for the startup log, secrets masked.
func (c Config) Attrs() []any {
	return []any{
		"http_addr", c.HTTPAddr,
		"metrics_addr", c.MetricsAddr,
		"body_limit", c.BodyLimit,
		"http_max_conns", c.HTTPMaxConns,
		"mysql_dsn", MaskDSN(c.MySQLDSN),
		"memcached_servers", c.MemcachedServers,
		"session_replicas", c.SessionReplicas,
		"session_lifetime", c.SessionLifetime.String(),
		"counts_ttl", c.CountsTTL.String(),
		"page_cache_mib", c.PageCacheMiB,
		"page_cache_ttl", c.PageCacheTTL.String(),
		"memory_limit_mib", c.MemoryLimitMiB,
		"gomemlimit", c.GOMEMLIMIT,
		"cookie_secure", c.CookieSecure,
		"secret_key", c.secretKeyNote(),
	}
}

// secretKeyNote says where the secret key came from, never what it is.
func (c Config) secretKeyNote() string {
	switch {
	case c.secretKeyGenerated:
		return "generated for this process; set LOCALLIBRARY_SECRET_KEY to share one between replicas"
	case c.SecretKey != "":
		return "set"
	}
	return "none"
}

// MaskDSN hides the password of a DSN so it can be logged.
func MaskDSN(dsn string) string {
	if dsn == "" {
		return ""
	}
	parsed, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparseable)"
	}
	if parsed.Passwd != "" {
		parsed.Passwd = "xxxxx"
	}
	return parsed.FormatDSN()
}

// loader collects every problem instead of stopping at the first.
type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(name, problem string) {
	l.errs = append(l.errs, fmt.Errorf("%s%s %s", Prefix, name, problem))
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(Prefix + name)); v != "" {
		return v
	}
	return def
}

func (l *loader) list(name string) []string {
	raw := l.str(name, "")
	if raw == "" {
		return nil
	}
	var out []string
	for _, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			l.fail(name, fmt.Sprintf("has an empty entry in %q", raw))
			continue
		}
		out = append(out, part)
	}
	return out
}

// intAtLeast reads a whole number of at least min.
func (l *loader) intAtLeast(name string, def, min int) int {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min {
		l.fail(name, fmt.Sprintf("must be a whole number, %d or more, not %q", min, raw))
		return def
	}
	return n
}

func (l *loader) duration(name string, def time.Duration) time.Duration {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		l.fail(name, fmt.Sprintf("must be a duration such as 500ms or 2h, not %q", raw))
		return def
	}
	return d
}

func (l *loader) boolean(name string, def bool) bool {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		l.fail(name, fmt.Sprintf("must be true or false, not %q", raw))
		return def
	}
	return b
}

func (l *loader) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range l.list(name) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			addr, addrErr := netip.ParseAddr(s)
			if addrErr != nil {
				l.fail(name, fmt.Sprintf("entry %q is neither a CIDR nor an IP address", s))
				continue
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

func (l *loader) level(name string, def slog.Level) slog.Level {
	raw := l.str(name, "")
	if raw == "" {
		return def
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(raw)); err != nil {
		l.fail(name, fmt.Sprintf("must be debug, info, warn or error, not %q", raw))
		return def
	}
	return lvl
}
