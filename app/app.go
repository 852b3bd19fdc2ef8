// Package app builds the service from its configuration and runs it: the
// web server (with its connection cap and graceful shutdown), or the
// migrate, seed and rebuild commands.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/repository"
)

// command is one of the program's commands.
type command struct {
	name, args, summary string
	// load reads the command's configuration (config.Load for the server,
	// config.LoadForCommand for the commands that keep no sessions).
	load func(getenv func(string) string) (config.Config, error)
	// flags declares the command's flags on fs and returns the run that
	// reads them.
	flags func(fs *flag.FlagSet) func(ctx context.Context, cfg config.Config, logger *slog.Logger) error
}

var commands = []command{
	{"serve", "", "serve the website (the default)", config.Load, func(*flag.FlagSet) func(context.Context, config.Config, *slog.Logger) error {
		return serve
	}},
	{"migrate", "", "apply the database migrations to LOCALLIBRARY_MYSQL_DSN", config.LoadForCommand, func(*flag.FlagSet) func(context.Context, config.Config, *slog.Logger) error {
		return migrate
	}},
	{"seed", "[flags]", "fill an empty catalog in LOCALLIBRARY_MYSQL_DSN", config.LoadForCommand, seedFlags},
	{"rebuild", "", "recompute every book's genres and copies (book_detail) in LOCALLIBRARY_MYSQL_DSN, after rows were loaded with its triggers off", config.LoadForCommand, func(*flag.FlagSet) func(context.Context, config.Config, *slog.Logger) error {
		return rebuild
	}},
}

const configNote = "Configuration comes from LOCALLIBRARY_* environment variables (see README.md)."

// usage is the program's help: its commands.
func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: locallibrary [command] [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nlocallibrary COMMAND --help describes a command.\n%s\n", configNote)
}

// Run runs the command named by args[0] ("serve" when absent) until it
// finishes or ctx is cancelled. --help (or -h) prints the usage of the
// program or of the command, and does nothing else.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	name := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			usage(stdout)
			return nil
		}
		if !strings.HasPrefix(args[0], "-") {
			name, args = args[0], args[1:]
		}
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		var b strings.Builder
		usage(&b)
		return fmt.Errorf("unknown command %q\n%s", name, b.String())
	}
	cmd := commands[i]
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: %s\n\n%s.\n", strings.TrimSpace("locallibrary "+cmd.name+" "+cmd.args), cmd.summary)
		if cmd.args != "" {
			fmt.Fprintln(stdout, "\nflags:")
			fs.PrintDefaults()
		}
		fmt.Fprintln(stdout, "\n"+configNote)
	}
	run := cmd.flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // the usage is printed
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q (see locallibrary %s --help)", cmd.name, fs.Args(), cmd.name)
	}

	cfg, err := cmd.load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return run(ctx, cfg, logger)
}

// openCatalog connects to LOCALLIBRARY_MYSQL_DSN, or, when it is empty and
// the build includes it, to a migrated and seeded embedded engine.
func openCatalog(ctx context.Context, cfg config.Config, logger *slog.Logger) (*sqlx.DB, func(), error) {
	if cfg.MySQLDSN != "" {
		db, err := repository.NewPool(cfg.MySQLDSN, cfg.DBMaxOpenConns, logger)
		if err != nil {
			return nil, nil, err
		}
		logger.Info("catalog", "backend", "mysql", "dsn", config.MaskDSN(cfg.MySQLDSN))
		pingCtx, cancel := context.WithTimeout(ctx, cfg.QueryTimeout)
		defer cancel()
		if err := repository.NewCatalog(db, repository.CatalogOptions{}).Ping(pingCtx); err != nil {
			// Not fatal: /readyz says 503 until MySQL answers with the
			// schema, and the pool connects by itself then.
			logger.Warn("mysql not ready at start: not answering, or not migrated (locallibrary migrate)", "err", err)
		}
		return db, func() { _ = db.Close() }, nil
	}
	return openEmbeddedCatalog(ctx, cfg, logger)
}

// openForCommand opens the MySQL of LOCALLIBRARY_MYSQL_DSN for a command
// that works on it (the embedded engine, without a DSN, is migrated,
// seeded and rebuilt when the server starts).
func openForCommand(ctx context.Context, cfg config.Config, logger *slog.Logger, command string, maxConns int) (*sqlx.DB, error) {
	if cfg.MySQLDSN == "" {
		return nil, fmt.Errorf("%s needs LOCALLIBRARY_MYSQL_DSN (the embedded engine is migrated and seeded at start)", command)
	}
	return repository.Open(ctx, cfg.MySQLDSN, maxConns, logger)
}

func migrate(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	db, err := openForCommand(ctx, cfg, logger, "migrate", 2)
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

// rebuild recomputes book_detail, which the triggers keep as rows change
// but a bulk load with them off, or a TRUNCATE, does not.
func rebuild(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	db, err := openForCommand(ctx, cfg, logger, "rebuild", 2)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	if err := repository.RebuildBookDetail(ctx, db.DB); err != nil {
		return err
	}
	logger.Info("rebuilt book_detail", "dsn", config.MaskDSN(cfg.MySQLDSN), "took", time.Since(start).String())
	return nil
}

// seedFlags declares seed's flags and returns the seed they describe.
func seedFlags(fs *flag.FlagSet) func(context.Context, config.Config, *slog.Logger) error {
	var opt repository.SeedOptions
	fs.IntVar(&opt.Authors, "authors", 100, "authors to create")
	fs.IntVar(&opt.Books, "books", 1000, "books to create")
	fs.IntVar(&opt.CopiesPerBook, "copies-per-book", 3, "copies of each book")
	fs.Int64Var(&opt.Seed, "seed", 1, "random seed: the same flags give the same rows")
	return func(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
		return seed(ctx, cfg, logger, opt)
	}
}

func seed(ctx context.Context, cfg config.Config, logger *slog.Logger, opt repository.SeedOptions) error {
	if opt.Authors < 1 || opt.Books < 0 || opt.CopiesPerBook < 0 {
		return errors.New("seed: --authors must be at least 1, --books and --copies-per-book at least 0")
	}
	db, err := openForCommand(ctx, cfg, logger, "seed", 4)
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
