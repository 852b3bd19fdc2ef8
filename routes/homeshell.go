package routes

import (
	"bytes"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"

	"github.com/locallibrary/locallibrary/repository"
)

// homeShells caches the home page around its visit count. What a returning
// browser sees (no notice, cookies accepted) changes only with the counts,
// once per counts TTL, so the template runs once per counts and each
// request splices its own sentence into the cached halves: html/template's
// reflection cost most of the page's CPU.
type homeShells struct {
	renderer *renderer
	current  atomic.Pointer[homeShell]
}

type homeShell struct {
	counts     repository.Counts
	stale      bool
	head, tail []byte // the page before and after the visits sentence
}

// visitsPlaceholder stands for the sentence while the shell is rendered;
// html/template leaves it as it is.
const visitsPlaceholder = "VISITS-SENTENCE-PLACEHOLDER"

// cacheable tells whether the page is one a shell can serve.
func (page homePage) cacheable() bool {
	return page.VisitsKnown && !page.CookiesRefused && !page.ShowNoticeForm()
}

// render serves a cacheable home page from the shell for its counts.
func (h *homeShells) render(c *fiber.Ctx, page homePage) error {
	shell := h.current.Load()
	if shell == nil || shell.counts != page.Counts || shell.stale != page.CountsStale {
		var err error
		if shell, err = h.build(page); err != nil {
			return err
		}
		h.current.Store(shell)
	}
	c.Status(fiber.StatusOK)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	resp := c.Response()
	resp.ResetBody()
	resp.AppendBody(shell.head)
	resp.AppendBodyString(page.VisitsSentence())
	resp.AppendBody(shell.tail)
	return nil
}

func (h *homeShells) build(page homePage) (*homeShell, error) {
	page.visitsSentence = visitsPlaceholder
	var buf bytes.Buffer
	if err := h.renderer.execute(&buf, "home", page); err != nil {
		return nil, err
	}
	head, tail, found := bytes.Cut(buf.Bytes(), []byte(visitsPlaceholder))
	if !found {
		return nil, fmt.Errorf("home page template shows no visits sentence")
	}
	return &homeShell{counts: page.Counts, stale: page.CountsStale, head: head, tail: tail}, nil
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
