//go:build !noembeddeddb

package embedded

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/sirupsen/logrus"
)

// DatabaseName is the database that Start creates.
const DatabaseName = "locallibrary"

// noFileAccess is the engine's secure_file_priv: a path under a file, so
// no one can ever create it. LOAD_FILE, LOAD DATA INFILE and SELECT … INTO
// OUTFILE/DUMPFILE must name a file in that directory, and so all fail.
// (An empty secure_file_priv, go-mysql-server's default, lets them read and
// write anything this process can.)
var noFileAccess = filepath.Join(os.DevNull, "file-access-disabled")

// globalsOnce sets what go-mysql-server keeps process-wide (logrus and the
// global system variables): once, before the first engine starts.
var globalsOnce sync.Once
var globalsErr error

func setGlobals() error {
	globalsOnce.Do(func() {
		// Otherwise go-mysql-server logs a line per connection.
		logrus.SetLevel(logrus.ErrorLevel)
		globalsErr = sql.SystemVariables.AssignValues(map[string]any{"secure_file_priv": noFileAccess})
	})
	return globalsErr
}

// Start runs an in-memory MySQL-compatible server with an empty database
// named locallibrary, listening on 127.0.0.1 on a port the OS picks. The
// returned DSN is for go-sql-driver/mysql, so the same repository code
// talks to it. The server accepts one account, made up for this start (a
// random user name and password that only the DSN holds): any other local
// user who finds the port is refused. stop closes the listener; the data
// is gone with the process. ctx only bounds the start.
func Start(ctx context.Context) (dsn string, stop func() error, err error) {
	if err := ctx.Err(); err != nil {
		return "", nil, fmt.Errorf("start embedded database: %w", err)
	}
	if err := setGlobals(); err != nil {
		return "", nil, fmt.Errorf("start embedded database: turn file functions off: %w", err)
	}

	db := memory.NewDatabase(DatabaseName)
	db.EnablePrimaryKeyIndexes()
	provider := memory.NewDBProvider(db)
	// Databases made later with CREATE DATABASE get primary key indexes
	// too: without them foreign keys cannot be created.
	provider.WithOption(memory.NativeIndexProvider(true))
	engine := sqle.NewDefault(provider)
	// The account exists only in this engine's memory. Adding it turns on
	// go-mysql-server's user table, which otherwise lets any user name and
	// password in.
	user, password := "ll_"+rand.Text()[:16], rand.Text()
	users := engine.Analyzer.Catalog.MySQLDb
	ed := users.Editor()
	users.AddEphemeralSuperUser(ed, user, "localhost", password)
	ed.Close()

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
	dsn = fmt.Sprintf("%s:%s@tcp(%s)/%s", user, password, listener.Addr().String(), DatabaseName)
	return dsn, stop, nil
}
