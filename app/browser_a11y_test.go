//go:build !noembeddeddb

package app_test

// WCAG 2.2 AA checks that axe-core cannot make, because they need the page
// to be used: the focus ring of every element as the keyboard reaches it,
// the size of every pointer target, the skip link once it shows, and which
// navigation link says it is the current page.

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// What WCAG 2.2 AA asks of the pages.
const (
	minNonTextContrast = 3.0 // 1.4.11: focus rings and the borders that show a control
	minRingWidth       = 2.0 // px; a thinner ring is hard to see whatever its colour
	minTargetSize      = 24  // px, both ways (2.5.8), without relying on its spacing exception
	unknownAuthor      = "Unknown author"
)

// TestBrowserAccessibility visits every kind of page at 390 and 1280 px
// and checks, on each:
//   - aria-current="page" on exactly the navigation link of the page's
//     section, and that link drawn differently by more than its colour;
//   - every element the keyboard reaches: a focus ring at least 2 px wide
//     with 3:1 contrast against the background behind it, not cut off by
//     the page's edge, covering no other control; a border that shows a
//     control has 3:1 too; the element is at least 24 × 24 px;
//   - that Tab reaches every link and control on the page, the skip link
//     first, and that the skip link, shown, covers neither the navigation
//     nor the content; followed, it leads the next Tab into the content.
//
// It also checks that a book without an author is described by the same
// words in the list and on its page. The home page is checked twice: with
// the demo notice, and as a browser that refuses cookies sees it.
func TestBrowserAccessibility(t *testing.T) {
	memcached := testkit.Optional(t, testkit.EnvMemcached)
	b := newBrowser(t, browserOptions{})
	site := startSite(t, memcached, uniqueKeyPrefix(t))

	noAuthor := checkUnknownAuthor(b, site)
	checkPages(b, site, []a11yPage{
		{"home", "/catalog/", homeSection, 200}, // with the demo notice: never dismissed here
		{"book list", "/catalog/books/?page=2", booksSection, 200},
		{"book", "/catalog/book/1", booksSection, 200},
		{"book without an author", noAuthor, booksSection, 200},
		{"author list", "/catalog/authors/", authorsSection, 200},
		{"author", "/catalog/author/1", authorsSection, 200},
		{"forget me", "/catalog/forget/", "", 200},
		{"not found", "/catalog/book/999999999", "", 404},
	})

	// The home page a browser without cookies sees, with its retry link.
	noCookies := newBrowser(t, browserOptions{blockCookies: true})
	checkPages(noCookies, site, []a11yPage{{"home without cookies", "/catalog/", homeSection, 200}})
}

// The navigation's links: the hrefs a page's section is named by.
const (
	homeSection    = "/catalog/"
	booksSection   = "/catalog/books/"
	authorsSection = "/catalog/authors/"
)

type a11yPage struct {
	name, path string
	section    string // the href of the navigation link that is current; "" for none
	status     int
}

// checkPages checks each page at 1280 and 390 px.
func checkPages(b *browser, site string, pages []a11yPage) {
	b.t.Helper()
	viewports := []struct {
		name    string
		emulate chromedp.Action[chromedp.Void]
	}{
		{"1280 px", chromedp.EmulateViewport(1280, 900)},
		{"390 px", chromedp.Emulate(device.IPhone13)},
	}
	for _, vp := range viewports {
		b.do("emulate "+vp.name, vp.emulate)
		for _, p := range pages {
			where := p.name + " at " + vp.name
			if resp := b.open(site + p.path); resp.Status != int64(p.status) {
				b.t.Errorf("%s: status %d, want %d", where, resp.Status, p.status)
			}
			if p.status == 404 {
				// Chromium logs the document's 404 as an error: expected here.
				for _, problem := range b.takeProblems() {
					if !strings.Contains(problem, "404") {
						b.t.Errorf("after %s: %s", where, problem)
					}
				}
			}
			checkCurrentSection(b, where, p.section)
			checkKeyboardWalk(b, where)
		}
		b.open(site + pages[0].path)
		checkSkipLink(b, pages[0].name+" at "+vp.name)
	}
}

// checkSkipLink follows the skip link from the keyboard: the content must
// then be on screen and the next Tab must land in it, past the navigation.
func checkSkipLink(b *browser, where string) {
	b.t.Helper()
	b.do("Tab, Enter", chromedp.KeyEvent("\t"), chromedp.KeyEvent("\r"))
	top := evaluate[float64](b, `document.querySelector("main").getBoundingClientRect().top`)
	if vh := evaluate[float64](b, `innerHeight`); top < 0 || top > vh/2 {
		b.t.Errorf("%s: after the skip link the content starts %.0f px down a %.0f px window", where, top, vh)
	}
	b.do("Tab", chromedp.KeyEvent("\t"))
	if got := evaluate[string](b, `document.activeElement.closest("main") ? "" : document.activeElement.outerHTML.slice(0, 80)`); got != "" {
		b.t.Errorf("%s: the Tab after the skip link focuses %s, want the first control of the content", where, got)
	}
}

// checkUnknownAuthor finds a book without an author in the book list and
// checks that the list and the book's page say so in the same words. It
// returns the book's path.
func checkUnknownAuthor(b *browser, site string) string {
	b.t.Helper()
	// A list item is "Title (Last, First)" when the book has an author.
	withAuthor := regexp.MustCompile(`\([^()]+, [^()]+\)$`)
	for page := 1; page <= demoBooks/10; page++ {
		b.open(fmt.Sprintf("%s/catalog/books/?page=%d", site, page))
		type item struct{ Text, Href string }
		items := evaluate[[]item](b, `[...document.querySelectorAll(".item-list > li")].map(li => ({
			Text: li.textContent.trim().replace(/\s+/g, " "),
			Href: li.querySelector("a").getAttribute("href"),
		}))`)
		for _, it := range items {
			if withAuthor.MatchString(it.Text) {
				continue
			}
			if !strings.HasSuffix(it.Text, "("+unknownAuthor+")") {
				b.t.Errorf("the book list shows a book without an author as %q, want it to end with %q", it.Text, "("+unknownAuthor+")")
			}
			b.open(site + it.Href)
			got := evaluate[string](b, `[...document.querySelectorAll("main p")].map(p => p.textContent.trim().replace(/\s+/g, " ")).find(t => t.startsWith("Author")) || ""`)
			if want := "Author: " + unknownAuthor; got != want {
				b.t.Errorf("the page of a book without an author (%s) reads %q, want %q", it.Href, got, want)
			}
			return it.Href
		}
	}
	b.t.Fatalf("no book without an author in the demo catalog's list")
	return ""
}

// checkCurrentSection checks that aria-current="page" is on exactly one
// element, the navigation link of section (its href), or on none when
// section is "", and that the link is marked by more than colour: weight,
// a bar or a border sets it apart from the other links of its list.
func checkCurrentSection(b *browser, where, section string) {
	b.t.Helper()
	current := evaluate[[]string](b, `[...document.querySelectorAll("[aria-current]")].map(el =>
		(el.closest("nav") ? "nav " : "") + el.tagName.toLowerCase() + " " + el.getAttribute("href") + ' aria-current="' + el.getAttribute("aria-current") + '"')`)
	want := []string{}
	if section != "" {
		want = append(want, "nav a "+section+` aria-current="page"`)
	}
	if fmt.Sprint(current) != fmt.Sprint(want) {
		b.t.Errorf("%s: the elements with aria-current are %q, want %q", where, current, want)
		return
	}
	if section == "" {
		return
	}
	type look struct {
		Current bool
		Look    string
	}
	looks := evaluate[[]look](b, `[...document.querySelector("nav a[aria-current]").closest("ul").querySelectorAll("a")].map(a => {
		const s = getComputedStyle(a);
		return {
			Current: a.hasAttribute("aria-current"),
			Look: [s.fontWeight, s.boxShadow, s.textDecorationLine,
				...["Top", "Right", "Bottom", "Left"].map(side => s["border" + side + "Width"] + " " + s["border" + side + "Style"])].join(" | "),
		};
	})`)
	var mark string
	for _, l := range looks {
		if l.Current {
			mark = l.Look
		}
	}
	for _, l := range looks {
		if !l.Current && l.Look == mark {
			b.t.Errorf("%s: the current link looks like the others but for colour (%s)", where, mark)
			return
		}
	}
}

// focusStop is what the page shows when the keyboard focuses an element:
// read in a focusin listener, so each Tab is seen as it happens.
type focusStop struct {
	Index                       int // among the page's targets, -1 if none
	Name                        string
	OutlineStyle, OutlineColor  string
	OutlineWidth, OutlineOffset float64
	Behind                      []string // background colours from the parent up to the first opaque one
	Own                         []string // the same from the element itself
	BorderStyle, BorderColor    string
	BorderWidth                 float64
	Left, Top, Width, Height    float64 // in the document, px
	PageWidth                   float64
	Overlaps                    []string // other targets, and for the skip link the navigation or the content, its box covers
	Skip                        bool
}

// The page's targets: what can be pointed at or focused. Hidden inputs
// and undisplayed elements are no targets.
const targetsJS = `[...document.querySelectorAll("a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex='-1'])")]
	.filter(el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden")`

// recordFocusJS installs the focusin listener that records a focusStop
// each time an element gets the focus, and returns how many targets the
// page has.
const recordFocusJS = `(() => {
	const targets = () => ` + targetsJS + `;
	const docRect = el => {
		const r = el.getBoundingClientRect();
		return {left: r.left + scrollX, top: r.top + scrollY, right: r.right + scrollX, bottom: r.bottom + scrollY};
	};
	const intersect = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
	const backgrounds = from => {
		const out = [];
		for (let e = from; e; e = e.parentElement) {
			const c = getComputedStyle(e).backgroundColor;
			out.push(c);
			if (!c.startsWith("rgba") && !c.startsWith("transparent")) break;
		}
		return out;
	};
	const name = el => (el.tagName.toLowerCase() + " " + JSON.stringify((el.innerText || el.value || el.getAttribute("aria-label") || "").trim().slice(0, 40)));
	window.focusStops = [];
	document.addEventListener("focusin", ev => {
		const el = ev.target, s = getComputedStyle(el), all = targets(), box = docRect(el);
		const overlaps = all.filter(o => o !== el && !o.contains(el) && !el.contains(o) && intersect(box, docRect(o))).map(name);
		const skip = el.classList.contains("skip");
		if (skip) {
			for (const sel of ["nav", "main"]) {
				const region = document.querySelector(sel);
				if (region && intersect(box, docRect(region))) overlaps.push(sel);
			}
		}
		window.focusStops.push({
			Index: all.indexOf(el), Name: name(el),
			OutlineStyle: s.outlineStyle, OutlineColor: s.outlineColor,
			OutlineWidth: parseFloat(s.outlineWidth) || 0, OutlineOffset: parseFloat(s.outlineOffset) || 0,
			Behind: backgrounds(el.parentElement), Own: backgrounds(el),
			BorderStyle: s.borderTopStyle, BorderColor: s.borderTopColor, BorderWidth: parseFloat(s.borderTopWidth) || 0,
			Left: box.left, Top: box.top, Width: box.right - box.left, Height: box.bottom - box.top,
			PageWidth: document.documentElement.clientWidth,
			Overlaps: overlaps, Skip: skip,
		});
	});
	return targets().length;
})()`

// checkKeyboardWalk presses Tab through the page from its start and checks
// every element the focus reaches.
func checkKeyboardWalk(b *browser, where string) {
	b.t.Helper()
	b.do("blur", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	targets := evaluate[int](b, recordFocusJS)
	// One Tab per target reaches them all from the document's start; the
	// focus then leaves the page or starts over, which adds nothing.
	b.do("press Tab through "+where, chromedp.KeyEvent(strings.Repeat("\t", targets)))
	stops := evaluate[[]focusStop](b, `window.focusStops`)

	reached := map[int]bool{}
	for i, s := range stops {
		if s.Index < 0 {
			b.t.Errorf("%s: Tab %d focused %s, which is no link or control", where, i+1, s.Name)
			continue
		}
		if reached[s.Index] {
			break // around again
		}
		reached[s.Index] = true
		if i == 0 && !s.Skip {
			b.t.Errorf("%s: the first Tab focuses %s, want the skip link", where, s.Name)
		}
		checkFocusStop(b, where, s)
	}
	if len(reached) != targets {
		b.t.Errorf("%s: Tab reached %d of the page's %d links and controls", where, len(reached), targets)
	}
	b.t.Logf("%s: %d links and controls checked", where, len(reached))
}

// checkFocusStop checks one focused element.
func checkFocusStop(b *browser, where string, s focusStop) {
	b.t.Helper()
	what := where + ": " + s.Name
	behind, err := effectiveBackground(s.Behind)
	if err != nil {
		b.t.Errorf("%s: %v", what, err)
		return
	}
	if s.OutlineStyle == "none" || s.OutlineStyle == "hidden" || s.OutlineWidth < minRingWidth {
		b.t.Errorf("%s: the focus ring is %s %.1f px, want a ring of at least %.0f px", what, s.OutlineStyle, s.OutlineWidth, minRingWidth)
	} else {
		ring, err := parseColor(s.OutlineColor)
		if err != nil {
			b.t.Errorf("%s: focus ring: %v", what, err)
			return
		}
		ring = ring.over(behind)
		if c := contrast(ring, behind); c < minNonTextContrast {
			b.t.Errorf("%s: the focus ring %s has %.2f:1 contrast with the background %s behind it, want %.0f:1",
				what, s.OutlineColor, c, behind, minNonTextContrast)
		}
		// A ring drawn over the element itself must stand out from it too.
		if s.OutlineOffset < 0 {
			own, err := effectiveBackground(s.Own)
			if err == nil && contrast(ring, own) < minNonTextContrast {
				b.t.Errorf("%s: the focus ring %s, drawn inside the element, has %.2f:1 contrast with its background %s",
					what, s.OutlineColor, contrast(ring, own), own)
			}
		}
		reach := max(s.OutlineOffset+s.OutlineWidth, 0)
		if s.Left-reach < 0 || s.Top-reach < 0 || s.Left+s.Width+reach > s.PageWidth {
			b.t.Errorf("%s: the page's edge cuts off the focus ring (box %.0f,%.0f %.0f×%.0f, ring %.0f px out, page %.0f px wide)",
				what, s.Left, s.Top, s.Width, s.Height, reach, s.PageWidth)
		}
	}
	// A border that draws the control (the pager's links, the select) must
	// be seen; a fill that already stands out from the page does that job.
	if s.BorderWidth > 0 && s.BorderStyle != "none" {
		border, err1 := parseColor(s.BorderColor)
		own, err2 := effectiveBackground(s.Own)
		if err1 != nil || err2 != nil {
			b.t.Errorf("%s: border: %v %v", what, err1, err2)
		} else if contrast(own, behind) < minNonTextContrast {
			if c := contrast(border.over(behind), behind); c < minNonTextContrast {
				b.t.Errorf("%s: the border %s has %.2f:1 contrast with the background %s, want %.0f:1",
					what, s.BorderColor, c, behind, minNonTextContrast)
			}
		}
	}
	if s.Width < minTargetSize || s.Height < minTargetSize {
		b.t.Errorf("%s: the target is %.1f × %.1f px, want at least %d × %d", what, s.Width, s.Height, minTargetSize, minTargetSize)
	}
	if len(s.Overlaps) > 0 {
		b.t.Errorf("%s: when focused it covers %s", what, strings.Join(s.Overlaps, ", "))
	}
}

// rgba is a CSS colour with components 0-255 and alpha 0-1.
type rgba struct{ r, g, b, a float64 }

func (c rgba) String() string { return fmt.Sprintf("rgb(%.0f, %.0f, %.0f)", c.r, c.g, c.b) }

// over composes c over an opaque background.
func (c rgba) over(bg rgba) rgba {
	mix := func(x, y float64) float64 { return c.a*x + (1-c.a)*y }
	return rgba{mix(c.r, bg.r), mix(c.g, bg.g), mix(c.b, bg.b), 1}
}

var colorPattern = regexp.MustCompile(`^rgba?\((\d+(?:\.\d+)?), (\d+(?:\.\d+)?), (\d+(?:\.\d+)?)(?:, (\d*(?:\.\d+)?))?\)$`)

// parseColor reads a computed colour as Chromium writes it: rgb(r, g, b)
// or rgba(r, g, b, a).
func parseColor(s string) (rgba, error) {
	m := colorPattern.FindStringSubmatch(s)
	if m == nil {
		return rgba{}, fmt.Errorf("cannot read the colour %q", s)
	}
	c := rgba{a: 1}
	for i, p := range []*float64{&c.r, &c.g, &c.b, &c.a} {
		if m[i+1] == "" {
			continue
		}
		v, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			return rgba{}, fmt.Errorf("cannot read the colour %q: %v", s, err)
		}
		*p = v
	}
	return c, nil
}

// effectiveBackground composes the backgrounds of an element and its
// ancestors, nearest first, over the white of the canvas.
func effectiveBackground(layers []string) (rgba, error) {
	bg := rgba{255, 255, 255, 1}
	for i := len(layers) - 1; i >= 0; i-- {
		c, err := parseColor(layers[i])
		if err != nil {
			return rgba{}, err
		}
		bg = c.over(bg)
	}
	return bg, nil
}

// contrast is WCAG's contrast ratio of two opaque colours, 1 to 21.
func contrast(x, y rgba) float64 {
	lx, ly := luminance(x), luminance(y)
	return (max(lx, ly) + 0.05) / (min(lx, ly) + 0.05)
}

// luminance is WCAG's relative luminance of an sRGB colour.
func luminance(c rgba) float64 {
	channel := func(v float64) float64 {
		v /= 255
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*channel(c.r) + 0.7152*channel(c.g) + 0.0722*channel(c.b)
}

// The contrast arithmetic gives WCAG's figures, including the for
// the old amber focus ring.
func TestContrast(t *testing.T) {
	tests := []struct {
		fg     string
		layers []string
		want   float64
	}{
		{"rgb(0, 0, 0)", []string{"rgb(255, 255, 255)"}, 21},
		{"rgb(242, 169, 0)", []string{"rgb(255, 255, 255)"}, 2.01},                           // the old ring on white
		{"rgb(242, 169, 0)", []string{"rgba(0, 0, 0, 0)", "rgb(241, 244, 248)"}, 1.82},       // on the sidebar, through a transparent list
		{"rgba(0, 0, 0, 0.5)", []string{"rgb(255, 255, 255)"}, 3.98},                         // half black over white: a grey of 127.5
		{"rgb(118, 118, 118)", []string{"rgba(0, 0, 0, 0)", "rgba(255, 255, 255, 0)"}, 4.54}, // nothing opaque: the white canvas
	}
	for _, tt := range tests {
		bg, err := effectiveBackground(tt.layers)
		if err != nil {
			t.Fatal(err)
		}
		fg, err := parseColor(tt.fg)
		if err != nil {
			t.Fatal(err)
		}
		if got := contrast(fg.over(bg), bg); math.Abs(got-tt.want) > 0.01 {
			t.Errorf("contrast of %s on %v = %.3f, want %.2f", tt.fg, tt.layers, got, tt.want)
		}
	}
	if _, err := parseColor("oklch(0.5 0.1 200)"); err == nil {
		t.Errorf("a colour the test cannot read was accepted")
	}
}
