// Package templates embeds the site's HTML templates and static files, so the
// binary serves the whole site with no files beside it.
package templates

import "embed"

// FS holds layout.html, one .html file per page, and static/.
//
//go:embed *.html static
var FS embed.FS
