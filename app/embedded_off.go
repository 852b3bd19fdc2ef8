//go:build noembeddeddb

package app

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/config"
)

// openEmbeddedCatalog refuses: this build leaves the embedded engine out.
func openEmbeddedCatalog(context.Context, config.Config, *slog.Logger) (*sqlx.DB, func(), error) {
	return nil, nil, errors.New("LOCALLIBRARY_MYSQL_DSN is required: this build has no embedded database")
}
