package testkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// Cookie is one cookie a browser keeps.
type Cookie struct {
	Name, Value, Path string
	Persistent        bool // it has Max-Age or Expires: it outlives a browser restart
}

// Jar is a browser's cookies for one site: the little of cookie handling
// the site needs (no domains, no Secure), cheap enough for thousands of
// simulated browsers.
type Jar struct{ cookies []Cookie }

// Keep stores one Set-Cookie header as a browser would: a cookie with an
// empty value, a Max-Age of 0 or less or an Expires in the past is
// deleted. It returns the cookie's name and whether the jar changed.
func (j *Jar) Keep(setCookie string) (name string, changed bool) {
	c, err := http.ParseSetCookie(setCookie)
	if err != nil {
		return "", false
	}
	gone := c.Value == "" || c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now()))
	path := c.Path
	if path == "" || path[0] != '/' {
		path = "/"
	}
	kept := Cookie{Name: c.Name, Value: c.Value, Path: path, Persistent: c.MaxAge > 0 || !c.Expires.IsZero()}
	for i, old := range j.cookies {
		if old.Name != c.Name {
			continue
		}
		if gone {
			j.cookies = append(j.cookies[:i], j.cookies[i+1:]...)
			return c.Name, true
		}
		j.cookies[i] = kept
		return c.Name, old != kept
	}
	if gone {
		return c.Name, false
	}
	j.cookies = append(j.cookies, kept)
	return c.Name, true
}

// KeepResponse stores every Set-Cookie of a response.
func (j *Jar) KeepResponse(h http.Header) {
	for _, line := range h.Values("Set-Cookie") {
		j.Keep(line)
	}
}

// Value is the named cookie's value, "" without one.
func (j *Jar) Value(name string) string {
	for _, c := range j.cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// Header is the Cookie header a request for path carries; persistentOnly
// leaves out the session-only cookies, as after a browser restart.
func (j *Jar) Header(path string, persistentOnly bool) string {
	var b strings.Builder
	for _, c := range j.cookies {
		if !strings.HasPrefix(path, c.Path) || persistentOnly && !c.Persistent {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.Name + "=" + c.Value)
	}
	return b.String()
}

// Browser talks to one site as a browser does: it keeps the cookies,
// follows redirects (recording each hop, as the cookie check makes three)
// and submits a page's forms with their hidden inputs.
type Browser struct {
	Base   string // http://host:port
	Client *http.Client
	Jar    Jar
}

// NewBrowser makes a browser for base. A nil transport gives it
// connections of its own, as a real browser has; a shared one lets many
// simulated browsers share a few.
func NewBrowser(base string, transport http.RoundTripper) *Browser {
	if transport == nil {
		transport = &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 20 * time.Second}
	}
	return &Browser{Base: strings.TrimSuffix(base, "/"), Client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: transport,
		// Redirects are followed by hand, so every hop's cookies are kept.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Page is the last answer of a visit, after its redirects.
type Page struct {
	Path   string // the request that answered, after redirects
	Status int
	Header http.Header
	Body   string
	Hops   []int // the statuses of the redirects followed
}

// Get loads path, following redirects.
func (b *Browser) Get(ctx context.Context, path string) (Page, error) {
	return b.Do(ctx, http.MethodGet, path, nil)
}

// Do requests path (a POST of form when form is not nil) and follows
// redirects within the site as a browser does, with GETs.
func (b *Browser) Do(ctx context.Context, method, path string, form url.Values) (Page, error) {
	var pg Page
	for range 8 {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, b.Base+path, body)
		if err != nil {
			return pg, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if c := b.Jar.Header(req.URL.Path, false); c != "" {
			req.Header.Set("Cookie", c)
		}
		resp, err := b.Client.Do(req)
		if err != nil {
			return pg, err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return pg, err
		}
		b.Jar.KeepResponse(resp.Header)
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			pg.Hops = append(pg.Hops, resp.StatusCode)
			loc, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil || loc.Host != req.URL.Host {
				return pg, fmt.Errorf("%s %s: redirect to %q, off the site", method, path, resp.Header.Get("Location"))
			}
			path = loc.RequestURI()
			if resp.StatusCode <= http.StatusSeeOther {
				method, form = http.MethodGet, nil
			}
			continue
		}
		pg.Path, pg.Status, pg.Header, pg.Body = path, resp.StatusCode, resp.Header, string(raw)
		return pg, nil
	}
	return pg, fmt.Errorf("%s %s: more than 8 redirects", method, path)
}

// Submit posts the page's form whose action is action, with its inputs'
// values (the hidden ones carry the CSRF token), as a click on its button
// does, and follows the redirects.
func (b *Browser) Submit(ctx context.Context, pg Page, action string) (Page, error) {
	form, err := FormValues(pg.Body, action)
	if err != nil {
		return Page{}, fmt.Errorf("%s: %w", pg.Path, err)
	}
	return b.Do(ctx, http.MethodPost, action, form)
}

// FormValues returns the names and values of the inputs of the form in
// body whose action is action.
func FormValues(body, action string) (url.Values, error) {
	z := html.NewTokenizer(strings.NewReader(body))
	var in bool
	var vals url.Values
	for {
		switch z.Next() {
		case html.ErrorToken:
			if vals != nil {
				return vals, nil
			}
			return nil, fmt.Errorf("no form with action %q in the page", action)
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			switch {
			case tok.Data == "form" && attr(tok, "action") == action:
				in, vals = true, url.Values{}
			case tok.Data == "input" && in && attr(tok, "name") != "":
				vals.Add(attr(tok, "name"), attr(tok, "value"))
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); in && string(name) == "form" {
				return vals, nil
			}
		}
	}
}

func attr(t html.Token, name string) string {
	for _, a := range t.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}
