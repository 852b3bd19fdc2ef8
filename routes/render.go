package routes

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/locallibrary/locallibrary/internal/tmplexec"
	"github.com/locallibrary/locallibrary/templates"
)

// pageNames are the pages; each is parsed with the layout into its own set,
// so a page's blocks never collide with another's.
var pageNames = []string{"home", "book_list", "author_list", "book_detail", "author_detail", "forget", "error"}

// renderer executes the pages with tmplexec: html/template parses and
// escapes them, tmplexec runs the escaped trees without the reflective
// calls that made html/template's execution most of a page's CPU.
type renderer struct {
	pages map[string]*tmplexec.Template
}

func newRenderer(a *assets) (*renderer, error) {
	parsed, err := parsePages(a)
	if err != nil {
		return nil, err
	}
	r := &renderer{pages: make(map[string]*tmplexec.Template, len(parsed))}
	for name, p := range parsed {
		if r.pages[name], err = tmplexec.New(p.tmpl, p.funcs, "nav", "asset"); err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
	}
	return r, nil
}

// parsedPage is a page's template set and the functions it was parsed with.
type parsedPage struct {
	tmpl  *template.Template
	funcs template.FuncMap
}

func parsePages(a *assets) (map[string]parsedPage, error) {
	pages := make(map[string]parsedPage, len(pageNames))
	for _, name := range pageNames {
		links := navFor(pageSections[name])
		funcs := template.FuncMap{
			"lifespan": lifespan,
			"nav":      func() []navLink { return links },
			"asset":    a.url,
		}
		t := template.New("layout.html").Funcs(funcs)
		if _, err := t.ParseFS(templates.FS, "layout.html", "pager.html", name+".html"); err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
		pages[name] = parsedPage{tmpl: t, funcs: funcs}
	}
	return pages, nil
}

// render executes a page into a pooled buffer first, so a template error
// becomes a clean 500 instead of half a page.
func (r *renderer) render(c *fiber.Ctx, status int, name string, data any) error {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	var err error
	if buf.B, err = r.execute(buf.B, name, data); err != nil {
		return err
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	// SetBody copies: Send would keep buf.B, which goes back to the pool.
	c.Response().SetBody(buf.B)
	return nil
}

// bytes renders a page into a new slice of its own, for a cache to keep.
func (r *renderer) bytes(name string, data any) ([]byte, error) {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	var err error
	if buf.B, err = r.execute(buf.B, name, data); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.B), nil
}

// execute appends a page to dst.
func (r *renderer) execute(dst []byte, name string, data any) ([]byte, error) {
	t, ok := r.pages[name]
	if !ok {
		return dst, fmt.Errorf("no page template %q", name)
	}
	dst, err := t.Execute(dst, data)
	if err != nil {
		return dst, fmt.Errorf("render %s: %w", name, err)
	}
	return dst, nil
}

func formatDate(t sql.NullTime) string {
	if !t.Valid {
		return ""
	}
	return t.Time.Format("Jan. 2, 2006")
}

// lifespan is the tutorial's "born - died" line.
func lifespan(born, died sql.NullTime) string {
	return strings.TrimSpace(formatDate(born) + " - " + formatDate(died))
}

// assets are the embedded static files, served under names that carry a
// hash of their content so browsers may cache them for a year.
type assets struct {
	byName map[string]asset // "style.css" → content
	byURL  map[string]asset // "style.3f2a9c1b.css" → content
}

type asset struct {
	url         string
	contentType string
	body        []byte
}

func loadAssets() (*assets, error) {
	a := &assets{byName: map[string]asset{}, byURL: map[string]asset{}}
	err := fs.WalkDir(templates.FS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(templates.FS, p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		sum := sha256.Sum256(body)
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:hashHexLen/2]) + ext
		entry := asset{url: "/static/" + hashed, contentType: mime.TypeByExtension(ext), body: body}
		a.byName[name] = entry
		a.byURL[hashed] = entry
		return nil
	})
	return a, err
}

func (a *assets) url(name string) string { return a.byName[name].url }

// handler serves only the files it knows, so no path can reach anything
// else: by their hashed names for a year, and by a name with another
// version's hash as they are now, to be checked again. During a rolling
// deploy a page from one version may fetch its stylesheet from a replica
// of the other: an older or newer style beats an unstyled page.
func (a *assets) handler(c *fiber.Ctx) error {
	name := c.Params("name")
	cacheControl := "public, max-age=31536000, immutable"
	entry, ok := a.byURL[name]
	if !ok {
		if entry, ok = a.byName[unhashed(name)]; !ok {
			return fiber.ErrNotFound
		}
		cacheControl = cacheRevalidate
	}
	c.Set(fiber.HeaderContentType, entry.contentType)
	c.Set(fiber.HeaderCacheControl, cacheControl)
	return c.Send(entry.body)
}

// unhashed is name without the hash loadAssets puts in: "style.0123abcd.css"
// is "style.css"; "" when name has no such hash.
func unhashed(name string) string {
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	dot := strings.LastIndexByte(base, '.')
	if dot < 1 || len(base)-dot-1 != hashHexLen {
		return ""
	}
	for _, r := range base[dot+1:] {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return ""
		}
	}
	return base[:dot] + ext
}

// hashHexLen is the length of the hash in a static file's name: 4 bytes
// of its SHA-256 in hex.
const hashHexLen = 8
