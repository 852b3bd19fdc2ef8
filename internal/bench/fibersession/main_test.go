package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2/middleware/session"
	dto "github.com/prometheus/client_model/go"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/templates"
)

// The home page counts visits in Fiber's session (here on its memory
// storage) and "Got it" hides the notice without counting.
func TestHomeCountsInTheSession(t *testing.T) {
	chrome, err := templates.NewChrome("/s.css", "/i.svg", nav)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := templates.CountsFragment(context.Background(), repository.Counts{Books: 1000}, false)
	if err != nil {
		t.Fatal(err)
	}
	pages := newPagesCounter()
	app := newApp(session.New(), chrome, func() templates.Fragment { return counts }, pages)
	cookie := ""
	send := func(method, path string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Cookie", cookie)
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if c := resp.Cookies(); len(c) > 0 {
			cookie = c[0].Name + "=" + c[0].Value
		}
		return resp.StatusCode, string(body)
	}
	for _, step := range []struct {
		method, path string
		status       int
		want, not    string
	}{
		{"GET", "/catalog/", 200, "You have visited this page 1 time.", ""},
		{"GET", "/catalog/", 200, "<strong>Books:</strong> 1000", ""},
		{"GET", "/catalog/", 200, "You have visited this page 3 times.", ""},
		{"POST", "/catalog/notice/dismiss", http.StatusSeeOther, "", ""},
		{"GET", "/catalog/", 200, "You have visited this page 4 times.", `action="/catalog/notice/dismiss"`},
	} {
		status, body := send(step.method, step.path)
		if status != step.status || !strings.Contains(body, step.want) || step.not != "" && strings.Contains(body, step.not) {
			t.Errorf("%s %s: %d, want %d with %q and without %q:\n%.400s", step.method, step.path, status, step.status, step.want, step.not, body)
		}
	}
	var m dto.Metric
	if err := pages.WithLabelValues("counted").Write(&m); err != nil || m.GetCounter().GetValue() != 4 {
		t.Errorf("counted pages %v (%v), want 4", m.GetCounter().GetValue(), err)
	}
}
