// Package app builds the service from its configuration and runs it: the
// web server, or the migrate and seed commands.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/go-sql-driver/mysql"
	fiberlog "github.com/gofiber/fiber/v2/log"
	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/repository"
)

const usage = `usage: locallibrary [command]

commands:
  serve     serve the website (the default)
  migrate   apply the database migrations to LOCALLIBRARY_MYSQL_DSN
  seed      fill an empty catalog: seed --authors N --books N --copies-per-book N [--seed S]

Configuration comes from LOCALLIBRARY_* environment variables (see README.md).`

// Run runs the command named by args[0] ("serve" when absent) until it
// finishes or ctx is cancelled.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// The MySQL driver logs dropped connections on its own; send them to
	// the service's log as warnings instead of bare lines on stderr.
	_ = mysql.SetLogger(driverLogger{logger})
	// Fiber logs on its own too (its csrf middleware warns when it cannot
	// save a session): into the same JSON log.
	fiberlog.SetOutput(fiberLogWriter{logger})

	command := "serve"
	if len(args) > 0 {
		command, args = args[0], args[1:]
	}
	switch command {
	case "serve":
		return serve(ctx, cfg, logger)
	case "migrate":
		return migrate(ctx, cfg, logger)
	case "seed":
		return seed(ctx, cfg, logger, args, stdout)
	case "help", "-h", "--help":
		_, err := fmt.Fprintln(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n%s", command, usage)
	}
}

// openCatalog connects to LOCALLIBRARY_MYSQL_DSN, or, when it is empty and
// the build includes it, to a migrated and seeded embedded engine.
func openCatalog(ctx context.Context, cfg config.Config, logger *slog.Logger) (*sqlx.DB, func(), error) {
	if cfg.MySQLDSN != "" {
		db, err := repository.NewPool(cfg.MySQLDSN, cfg.DBMaxOpenConns)
		if err != nil {
			return nil, nil, err
		}
		logger.Info("catalog", "backend", "mysql", "dsn", config.MaskDSN(cfg.MySQLDSN))
		pingCtx, cancel := context.WithTimeout(ctx, cfg.QueryTimeout)
		defer cancel()
		if err := db.PingContext(pingCtx); err != nil {
			// Not fatal: /readyz says 503 until MySQL answers, and the pool
			// connects by itself then.
			logger.Warn("mysql not answering at start", "err", err)
		}
		return db, func() { _ = db.Close() }, nil
	}
	return openEmbeddedCatalog(ctx, cfg, logger)
}

func migrate(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if cfg.MySQLDSN == "" {
		return errors.New("migrate needs LOCALLIBRARY_MYSQL_DSN (the embedded engine migrates itself at start)")
	}
	db, err := repository.Open(ctx, cfg.MySQLDSN, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := repository.Migrate(ctx, db.DB); err != nil {
		return err
	}
	logger.Info("migrated", "dsn", config.MaskDSN(cfg.MySQLDSN))
	return nil
}

func seed(ctx context.Context, cfg config.Config, logger *slog.Logger, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("seed", flag.ContinueOnError)
	flags.SetOutput(stdout)
	var opt repository.SeedOptions
	flags.IntVar(&opt.Authors, "authors", 100, "authors to create")
	flags.IntVar(&opt.Books, "books", 1000, "books to create")
	flags.IntVar(&opt.CopiesPerBook, "copies-per-book", 3, "copies of each book")
	flags.Int64Var(&opt.Seed, "seed", 1, "random seed: the same flags give the same rows")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if opt.Authors < 1 || opt.Books < 0 || opt.CopiesPerBook < 0 {
		return errors.New("seed: --authors must be at least 1, --books and --copies-per-book at least 0")
	}
	if cfg.MySQLDSN == "" {
		return errors.New("seed needs LOCALLIBRARY_MYSQL_DSN (the embedded engine seeds itself at start)")
	}
	db, err := repository.Open(ctx, cfg.MySQLDSN, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := repository.Seed(ctx, db, opt)
	if err != nil {
		return err
	}
	logger.Info("seeded", "authors", res.Authors, "books", res.Books, "copies", res.Copies,
		"genres", res.Genres, "languages", res.Languages, "took", res.Took.String())
	return nil
}

// driverLogger adapts slog to the MySQL driver's logger.
type driverLogger struct{ logger *slog.Logger }

func (l driverLogger) Print(v ...any) { l.logger.Warn("mysql driver", "detail", fmt.Sprint(v...)) }

// fiberLogWriter turns Fiber's plain log lines into the service's log.
type fiberLogWriter struct{ logger *slog.Logger }

func (w fiberLogWriter) Write(p []byte) (int, error) {
	w.logger.Warn("fiber", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
}
