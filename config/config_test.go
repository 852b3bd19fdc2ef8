package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/config"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestDefaults(t *testing.T) {
	cfg, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	// Loopback unless told otherwise: `go run .` is not on the network.
	if cfg.HTTPAddr != "127.0.0.1:8080" || cfg.MetricsAddr != "127.0.0.1:9090" {
		t.Errorf("listen addresses %q and %q by default, want loopback 127.0.0.1:8080 and 127.0.0.1:9090", cfg.HTTPAddr, cfg.MetricsAddr)
	}
	if cfg.HTTPMaxConns != config.DefaultHTTPMaxConns {
		t.Errorf("connection cap %d by default, want %d", cfg.HTTPMaxConns, config.DefaultHTTPMaxConns)
	}
	if cfg.MySQLDSN != "" || cfg.MemcachedServers != nil ||
		cfg.SessionLifetime != 14*24*time.Hour || cfg.CountsTTL != 2*time.Second || cfg.SessionReplicas != 1 ||
		cfg.ShutdownDrain != 5*time.Second || cfg.CookieSecure || cfg.BodyLimit != 8192 {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestValidSettings(t *testing.T) {
	cfg, err := config.Load(env(map[string]string{
		"LOCALLIBRARY_MYSQL_DSN":         "user:secret@tcp(db:3306)/library",
		"LOCALLIBRARY_MEMCACHED_SERVERS": " a:11211 , b:11211",
		"LOCALLIBRARY_SESSION_REPLICAS":  "2",
		"LOCALLIBRARY_COOKIE_SECURE":     "true",
		"LOCALLIBRARY_TRUSTED_PROXIES":   "10.0.0.0/8, 192.168.1.7",
		"LOCALLIBRARY_SESSION_LIFETIME":  "1h",
		"LOCALLIBRARY_LOG_LEVEL":         "debug",
		"LOCALLIBRARY_SECRET_KEY":        "a secret key of at least thirty-two characters",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.MemcachedServers, "|"); got != "a:11211|b:11211" {
		t.Errorf("servers = %q, want trimmed entries", got)
	}
	if len(cfg.TrustedProxies) != 2 || cfg.TrustedProxies[1].String() != "192.168.1.7/32" {
		t.Errorf("trusted proxies = %v", cfg.TrustedProxies)
	}
	if !cfg.CookieSecure || cfg.SessionReplicas != 2 || cfg.SessionLifetime != time.Hour {
		t.Errorf("settings not applied: %+v", cfg)
	}
	attrs := cfg.Attrs()
	for i := 1; i < len(attrs); i += 2 {
		if s, ok := attrs[i].(string); ok && (strings.Contains(s, "secret") || strings.Contains(s, cfg.SecretKey)) {
			t.Errorf("startup attributes show the password or the secret key: %v", attrs)
		}
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	_, err := config.Load(env(map[string]string{
		"LOCALLIBRARY_MYSQL_DSN":                    "not a dsn",
		"LOCALLIBRARY_MEMCACHED_SERVERS":            "a:11211,,nohost",
		"LOCALLIBRARY_COUNTS_TTL":                   "soon",
		"LOCALLIBRARY_DB_MAX_OPEN_CONNS":            "-3",
		"LOCALLIBRARY_COOKIE_SECURE":                "maybe",
		"LOCALLIBRARY_TRUSTED_PROXIES":              "10.0.0.0/99",
		"LOCALLIBRARY_SESSION_REPLICAS":             "3",
		"LOCALLIBRARY_LOG_LEVEL":                    "loud",
		"LOCALLIBRARY_MEMCACHED_TIMEOUT":            "0s",
		"LOCALLIBRARY_SECRET_KEY":                   "too short",
		"LOCALLIBRARY_SESSION_FIRST_VISIT_LIFETIME": "0s",
		"LOCALLIBRARY_BODY_LIMIT":                   "8k",
		"LOCALLIBRARY_METRICS_ADDR":                 ":8080",
		"LOCALLIBRARY_COUNTS_STALE_LIMIT":           "0s", // routes cannot serve without one
		// Renamed: silently ignoring it would drop the operator's sizing.
		"LOCALLIBRARY_MEMCACHED_MAX_IDLE_CONNS": "256",
	}))
	if err == nil {
		t.Fatal("bad settings were accepted")
	}
	for _, name := range []string{"MYSQL_DSN", "MEMCACHED_SERVERS", "COUNTS_TTL", "DB_MAX_OPEN_CONNS", "COOKIE_SECURE",
		"TRUSTED_PROXIES", "SESSION_REPLICAS", "LOG_LEVEL", "MEMCACHED_TIMEOUT", "SECRET_KEY", "SESSION_FIRST_VISIT_LIFETIME", "BODY_LIMIT", "METRICS_ADDR",
		"COUNTS_STALE_LIMIT", "MEMCACHED_MAX_IDLE_CONNS"} {
		if !strings.Contains(err.Error(), "LOCALLIBRARY_"+name) {
			t.Errorf("error does not name LOCALLIBRARY_%s:\n%v", name, err)
		}
	}
}

func TestMaskDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"user:secret@tcp(db:3306)/library", "user:xxxxx@tcp(db:3306)/library"},
		{"root@tcp(127.0.0.1:3306)/test", "root@tcp(127.0.0.1:3306)/test"},
	}
	for _, tt := range tests {
		if got := config.MaskDSN(tt.in); got != tt.want {
			t.Errorf("MaskDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPageCacheSettings(t *testing.T) {
	cfg, err := config.Load(env(nil))
	if err != nil || cfg.PageCacheMiB != 16 || cfg.PageCacheTTL != 30*time.Second {
		t.Errorf("defaults: %d MiB, TTL %v, err %v; want 16 MiB, 30s", cfg.PageCacheMiB, cfg.PageCacheTTL, err)
	}
	cfg, err = config.Load(env(map[string]string{"LOCALLIBRARY_PAGE_CACHE_MIB": "0", "LOCALLIBRARY_PAGE_CACHE_TTL": "2s"}))
	if err != nil || cfg.PageCacheMiB != 0 || cfg.PageCacheTTL != 2*time.Second {
		t.Errorf("cache off: %d MiB, TTL %v, err %v", cfg.PageCacheMiB, cfg.PageCacheTTL, err)
	}
	_, err = config.Load(env(map[string]string{"LOCALLIBRARY_PAGE_CACHE_MIB": "-1", "LOCALLIBRARY_PAGE_CACHE_TTL": "0s"}))
	if err == nil || !strings.Contains(err.Error(), "PAGE_CACHE_MIB") || !strings.Contains(err.Error(), "PAGE_CACHE_TTL") {
		t.Errorf("invalid settings: err = %v, want both named", err)
	}
}

func TestMemoryLimitCoversThePageCache(t *testing.T) {
	cfg, err := config.Load(env(nil))
	if err != nil || cfg.MemoryLimitMiB != 52 {
		t.Errorf("default: %d MiB, err %v; want 52", cfg.MemoryLimitMiB, err)
	}
	for _, ok := range []map[string]string{
		{"LOCALLIBRARY_MEMORY_LIMIT_MIB": "0", "LOCALLIBRARY_PAGE_CACHE_MIB": "512"},
		{"LOCALLIBRARY_MEMORY_LIMIT_MIB": "96", "LOCALLIBRARY_PAGE_CACHE_MIB": "64"},
	} {
		if _, err := config.Load(env(ok)); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	_, err = config.Load(env(map[string]string{"LOCALLIBRARY_PAGE_CACHE_MIB": "64"}))
	if err == nil || !strings.Contains(err.Error(), "MEMORY_LIMIT_MIB") || !strings.Contains(err.Error(), "(96)") {
		t.Errorf("a 64 MiB cache under the default limit: err = %v, want the limit named with 96", err)
	}
}

// TestGOMEMLIMITWins: the runtime reads GOMEMLIMIT itself; the service then
// sets no limit of its own, and does not judge the one it would have set.
func TestGOMEMLIMITWins(t *testing.T) {
	cfg, err := config.Load(env(map[string]string{"GOMEMLIMIT": "115MiB", "LOCALLIBRARY_PAGE_CACHE_MIB": "64"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryLimitMiB != 0 || cfg.GOMEMLIMIT != "115MiB" {
		t.Errorf("with GOMEMLIMIT: limit %d MiB, GOMEMLIMIT %q; want 0 and 115MiB", cfg.MemoryLimitMiB, cfg.GOMEMLIMIT)
	}
	cfg, err = config.Load(env(map[string]string{"LOCALLIBRARY_MEMORY_LIMIT_MIB": "80"}))
	if err != nil || cfg.MemoryLimitMiB != 80 || cfg.GOMEMLIMIT != "" {
		t.Errorf("without GOMEMLIMIT: limit %d MiB, GOMEMLIMIT %q, err %v; want 80", cfg.MemoryLimitMiB, cfg.GOMEMLIMIT, err)
	}
}

func TestMetricsListenerMustBeApart(t *testing.T) {
	tests := []struct {
		http, metrics string
		ok            bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:9090", true},
		{":8080", ":9090", true},
		{"127.0.0.1:8080", "127.0.0.2:8080", true}, // two loopback addresses, one port each
		{"127.0.0.1:8080", "127.0.0.1:8080", false},
		{"127.0.0.1:8080", ":8080", false}, // all interfaces include loopback
		{"[::]:8080", "127.0.0.1:8080", false},
		{"0.0.0.0:9090", "127.0.0.1:9090", false},
	}
	for _, tt := range tests {
		_, err := config.Load(env(map[string]string{"LOCALLIBRARY_HTTP_ADDR": tt.http, "LOCALLIBRARY_METRICS_ADDR": tt.metrics}))
		if got := err == nil; got != tt.ok {
			t.Errorf("site %s, metrics %s: accepted = %v, want %v (%v)", tt.http, tt.metrics, got, tt.ok, err)
		}
	}
}

// TestSecretKey: the server needs a key its replicas share once it uses
// shared services, makes one up for the single process, and never takes a
// short one; the commands that keep no sessions need none.
func TestSecretKey(t *testing.T) {
	const key = "a secret key of at least thirty-two characters"
	shared := map[string]string{"LOCALLIBRARY_MYSQL_DSN": "u@tcp(db:3306)/library"}
	tests := []struct {
		name    string
		vars    map[string]string
		load    func(func(string) string) (config.Config, error)
		wantErr string // "" for none
		wantKey string // "" for a key made up
	}{
		{"single process", nil, config.Load, "", ""},
		{"set", map[string]string{"LOCALLIBRARY_SECRET_KEY": key}, config.Load, "", key},
		{"MySQL without a key", shared, config.Load, "LOCALLIBRARY_SECRET_KEY is required", ""},
		{"memcached without a key", map[string]string{"LOCALLIBRARY_MEMCACHED_SERVERS": "mc:11211"}, config.Load, "LOCALLIBRARY_SECRET_KEY is required", ""},
		{"too short", map[string]string{"LOCALLIBRARY_SECRET_KEY": "short"}, config.Load, "LOCALLIBRARY_SECRET_KEY is 5 characters", ""},
		{"a command on MySQL", shared, config.LoadForCommand, "", "none"},
		{"a command, too short", map[string]string{"LOCALLIBRARY_SECRET_KEY": "short"}, config.LoadForCommand, "LOCALLIBRARY_SECRET_KEY is 5 characters", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.load(env(tt.vars))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			switch tt.wantKey {
			case "":
				if len(cfg.SecretKey) < 32 {
					t.Errorf("made-up key %q is shorter than 32", cfg.SecretKey)
				}
				if again, _ := tt.load(env(tt.vars)); again.SecretKey == cfg.SecretKey {
					t.Error("two starts made up the same key")
				}
			case "none":
				if cfg.SecretKey != "" {
					t.Errorf("key %q for a command that signs nothing", cfg.SecretKey)
				}
			default:
				if cfg.SecretKey != tt.wantKey {
					t.Errorf("key %q, want %q", cfg.SecretKey, tt.wantKey)
				}
			}
		})
	}
}

// TestMissingSecretKeyIsReportedWithTheRest: the key's rule is one of
// Load's problems, not a later surprise.
func TestMissingSecretKeyIsReportedWithTheRest(t *testing.T) {
	_, err := config.Load(env(map[string]string{"LOCALLIBRARY_MYSQL_DSN": "u@tcp(db:3306)/library", "LOCALLIBRARY_COUNTS_TTL": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "LOCALLIBRARY_SECRET_KEY") || !strings.Contains(err.Error(), "LOCALLIBRARY_COUNTS_TTL") {
		t.Errorf("err = %v, want both the secret key and the TTL named", err)
	}
}

func TestMadeUpSecretKeyIsNotLogged(t *testing.T) {
	cfg, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	attrs, noted := cfg.Attrs(), false
	for i := 0; i+1 < len(attrs); i += 2 {
		s, _ := attrs[i+1].(string)
		if strings.Contains(s, cfg.SecretKey) {
			t.Errorf("startup attributes show the key: %v", attrs)
		}
		noted = noted || attrs[i] == "secret_key" && strings.HasPrefix(s, "generated")
	}
	if !noted {
		t.Errorf("startup attributes do not say the key was made up: %v", attrs)
	}
}
