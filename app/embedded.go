//go:build !noembeddeddb

package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/repository/embedded"
)

// openEmbeddedCatalog starts the in-process engine, migrates it and seeds
// the demo catalog: the zero-install default of `go run .`.
func openEmbeddedCatalog(ctx context.Context, cfg config.Config, logger *slog.Logger) (*sqlx.DB, func(), error) {
	dsn, stop, err := embedded.Start(ctx)
	if err != nil {
		return nil, nil, err
	}
	db, err := repository.Open(ctx, dsn, cfg.DBMaxOpenConns, logger)
	if err != nil {
		_ = stop()
		return nil, nil, err
	}
	closeAll := func() { _ = db.Close(); _ = stop() }
	if err := repository.Migrate(ctx, db.DB); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("migrate embedded catalog: %w", err)
	}
	res, err := repository.Seed(ctx, db, embedded.DemoSeed())
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("seed embedded catalog: %w", err)
	}
	logger.Info("catalog", "backend", "embedded", "note", "in-memory demo data; set LOCALLIBRARY_MYSQL_DSN for MySQL",
		"books", res.Books, "copies", res.Copies)
	return db, closeAll, nil
}
