// Package templates holds the site's pages, written in templ
// (github.com/a-h/templ: the .templ files, and the Go that `go tool templ
// generate` makes of them, committed), and embeds its static files, so the
// binary serves the whole site with no files beside it.
package templates

import "embed"

// FS holds static/.
//
//go:embed static
var FS embed.FS
