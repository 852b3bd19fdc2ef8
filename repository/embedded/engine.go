//go:build !noembeddeddb

package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/sirupsen/logrus"
)

// DatabaseName is the database that Start creates.
const DatabaseName = "locallibrary"

// quietOnce lowers go-mysql-server's logging, which otherwise writes a line
// per connection and a warning about secure_file_priv to stderr. logrus is global: this is done once.
var quietOnce sync.Once

// Start runs an in-memory MySQL-compatible server with an empty database
// named locallibrary, listening on 127.0.0.1 on a port the OS picks. The
// returned DSN is for go-sql-driver/mysql (user root, no password), so the
// same repository code talks to it. stop closes the listener; the data is
// gone with the process. ctx only bounds the start.
func Start(ctx context.Context) (dsn string, stop func() error, err error) {
	if err := ctx.Err(); err != nil {
		return "", nil, fmt.Errorf("start embedded database: %w", err)
	}
	quietOnce.Do(func() { logrus.SetLevel(logrus.ErrorLevel) })

	db := memory.NewDatabase(DatabaseName)
	db.EnablePrimaryKeyIndexes()
	provider := memory.NewDBProvider(db)
	// Databases made later with CREATE DATABASE get primary key indexes
	// too: without them foreign keys cannot be created.
	provider.WithOption(memory.NativeIndexProvider(true))
	engine := sqle.NewDefault(provider)

	var lc net.ListenConfig
	listener, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("start embedded database: listen: %w", err)
	}
	cfg := server.Config{Protocol: "tcp", Address: listener.Addr().String(), Listener: listener}
	srv, err := server.NewServer(cfg, engine, sql.NewContext, memory.NewSessionBuilder(provider), nil)
	if err != nil {
		listener.Close()
		return "", nil, fmt.Errorf("start embedded database: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Start() // returns when the listener closes; it never reports an error
	}()

	var stopOnce sync.Once
	stop = func() error {
		var err error
		stopOnce.Do(func() {
			err = srv.Close()
			<-done
			// Shutting down the background threads cancels their context
			// and reports it: that is the normal end, not a failure.
			if cerr := engine.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
				err = errors.Join(err, cerr)
			}
		})
		return err
	}
	dsn = fmt.Sprintf("root@tcp(%s)/%s", listener.Addr().String(), DatabaseName)
	return dsn, stop, nil
}
