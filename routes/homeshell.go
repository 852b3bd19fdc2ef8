package routes

import (
	"bytes"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"

	"github.com/locallibrary/locallibrary/repository"
)

// homeShells caches the home page around what differs between browsers:
// the visits sentence and, while the demo notice shows, the CSRF token of
// its form. The rest changes only with the counts, once per counts TTL, so
// the template runs once per counts (and notice or not) and each request
// splices its own text into the cached parts: html/template's reflection
// cost most of the page's CPU.
type homeShells struct {
	renderer *renderer
	current  [2]atomic.Pointer[homeShell] // without and with the notice
}

type homeShell struct {
	counts repository.Counts
	stale  bool
	parts  [][]byte // the page between the holes
	holes  []hole   // what fills the gap after parts[i]
}

type hole int

const (
	visitsHole hole = iota
	tokenHole
)

// The placeholders stand for the holes while a shell is rendered;
// html/template leaves them as they are.
var placeholders = [...]string{
	visitsHole: "VISITS-SENTENCE-PLACEHOLDER",
	tokenHole:  "CSRF-TOKEN-PLACEHOLDER",
}

// cacheable tells whether the page is one a shell can serve.
func (page homePage) cacheable() bool {
	return page.VisitsKnown && !page.CookiesRefused && page.ShowNotice == page.ShowNoticeForm()
}

// render serves a cacheable home page from the shell for its counts.
func (h *homeShells) render(c *fiber.Ctx, page homePage) error {
	slot := &h.current[0]
	if page.ShowNotice {
		slot = &h.current[1]
	}
	shell := slot.Load()
	if shell == nil || shell.counts != page.Counts || shell.stale != page.CountsStale {
		var err error
		if shell, err = h.build(page); err != nil {
			return err
		}
		slot.Store(shell)
	}
	c.Status(fiber.StatusOK)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	resp := c.Response()
	resp.ResetBody()
	for i, hole := range shell.holes {
		resp.AppendBody(shell.parts[i])
		switch hole {
		case visitsHole:
			resp.AppendBodyString(page.VisitsSentence())
		case tokenHole:
			resp.AppendBodyString(page.CSRFToken) // base64url: nothing to escape
		}
	}
	resp.AppendBody(shell.parts[len(shell.holes)])
	return nil
}

func (h *homeShells) build(page homePage) (*homeShell, error) {
	page.visitsSentence = placeholders[visitsHole]
	if page.ShowNotice {
		page.CSRFToken = placeholders[tokenHole]
	}
	var buf bytes.Buffer
	if err := h.renderer.execute(&buf, "home", page); err != nil {
		return nil, err
	}
	shell := &homeShell{counts: page.Counts, stale: page.CountsStale}
	rest := buf.Bytes()
	for {
		at, which := -1, hole(0)
		for i, p := range placeholders {
			if j := bytes.Index(rest, []byte(p)); j >= 0 && (at < 0 || j < at) {
				at, which = j, hole(i)
			}
		}
		if at < 0 {
			break
		}
		shell.parts = append(shell.parts, rest[:at])
		shell.holes = append(shell.holes, which)
		rest = rest[at+len(placeholders[which]):]
	}
	shell.parts = append(shell.parts, rest)
	if len(shell.holes) == 0 {
		return nil, fmt.Errorf("home page template shows no visits sentence")
	}
	return shell, nil
}

// VisitsSentence is the tutorial's "You have visited this page N times."
func (page homePage) VisitsSentence() string {
	if page.visitsSentence != "" {
		return page.visitsSentence
	}
	if page.Visits == 1 {
		return "You have visited this page 1 time."
	}
	return "You have visited this page " + strconv.FormatUint(page.Visits, 10) + " times."
}
