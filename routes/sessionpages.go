package routes

import (
	"slices"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/templates"
)

// The tutorial's examples of what sessions are for: a notice the visitor
// has accepted stays hidden, a chosen page size is remembered, and the
// visitor can ask to be forgotten. The session package keeps the state;
// these are the pages.

const defaultPerPage = 10 // the tutorial's paginate_by

var perPageChoices = []int{10, 25, 50}

// perPage is the list's page size: ?per_page= when given (and then
// remembered), else the browser's choice, else 10. The choice is a cookie
// (session.PerPageCookie), so a list page reads no session from the store.
func perPage(c *fiber.Ctx) (int, error) {
	sess := session.From(c)
	raw := c.Query("per_page")
	if raw == "" {
		if size := sess.PerPage(); slices.Contains(perPageChoices, size) {
			return size, nil
		}
		return defaultPerPage, nil
	}
	size, err := strconv.Atoi(raw)
	if err != nil || !slices.Contains(perPageChoices, size) || raw[0] == '+' {
		return 0, fiber.ErrNotFound
	}
	if size != defaultPerPage || sess.PerPage() != 0 {
		_ = sess.SetPerPage(size) // a size from perPageChoices is always in range
	}
	return size, nil
}

// dismissNotice serves POST /catalog/notice/dismiss ("Got it").
func dismissNotice(c *fiber.Ctx) error {
	if err := session.From(c).DismissNotice(); err != nil {
		return err
	}
	return c.Redirect("/catalog/", fiber.StatusSeeOther)
}

// forgetPage serves GET /catalog/forget/: what forgetting means, and the button.
func forgetPage(r *renderer) fiber.Handler {
	return func(c *fiber.Ctx) error {
		return r.render(c, fiber.StatusOK, templates.ForgetPage(r.in(noSection), &templates.Forget{CSRFToken: session.From(c).CSRFToken()}))
	}
}

// forgetMe serves POST /catalog/forget/: the next page begins a new
// session, counting from one.
func forgetMe(c *fiber.Ctx) error {
	if err := session.From(c).Forget(); err != nil {
		return err
	}
	return c.Redirect("/catalog/", fiber.StatusSeeOther)
}
