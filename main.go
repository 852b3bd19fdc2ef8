// Command locallibrary serves the LocalLibrary catalog website; it only
// wires signals and the exit code around app.Run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/locallibrary/locallibrary/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C or SIGTERM drains and shuts down; after it, signals
	// get their default action again, so a second one ends the process at
	// once instead of waiting for the drain.
	context.AfterFunc(ctx, stop)
	if err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "locallibrary:", err)
		stop()
		os.Exit(1)
	}
}
