package routes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/locallibrary/locallibrary/templates"
)

// renderer renders the pages (templ components, see templates/) around
// the chrome of their section, worked out once when the site is built.
type renderer struct {
	chrome [sectionCount]*templates.Chrome
}

func newRenderer(a *assets) (*renderer, error) {
	r := new(renderer)
	for s := range sectionCount {
		chrome, err := templates.NewChrome(templ.SafeURL(a.url("style.css")), templ.SafeURL(a.url("favicon.svg")), navFor(s))
		if err != nil {
			return nil, fmt.Errorf("render the navigation: %w", err)
		}
		r.chrome[s] = chrome
	}
	return r, nil
}

// in is the chrome of a page of section s.
func (r *renderer) in(s section) *templates.Chrome { return r.chrome[s] }

// render renders a page into a pooled buffer first, so a failure becomes
// a clean 500 instead of half a page.
func (r *renderer) render(c *fiber.Ctx, status int, page templ.Component) error {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := page.Render(c.UserContext(), buf); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	// SetBody copies: Send would keep buf.B, which goes back to the pool.
	c.Response().SetBody(buf.B)
	return nil
}

// bytes renders a page into a new slice of its own, for a cache to keep.
func (r *renderer) bytes(ctx context.Context, page templ.Component) ([]byte, error) {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := page.Render(ctx, buf); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return bytes.Clone(buf.B), nil
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
