package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Addresses of the flood and of the office, apart from the browsers'
// 10.x.y.z (documentation ranges, RFC 5737).
const (
	floodAddr  = "203.0.113.66"
	officeAddr = "198.51.100.50"
)

// floodResult is what -flood saw.
type floodResult struct {
	requests, stored, failed  int64 // first visits sent, answered with a session cookie, not answered 200
	officeMade, officeCounted int   // office browsers given a session; then shown the count 2
	officeProblems            []string
}

// flood is -flood, between the browsers' first visits and the load, while
// they are away: -flood-conns connections send first visits that pass the
// cookie check (Cookie: cookietest=1, no session) from one address for
// -flood, each one a new session to store if the service lets it. Halfway
// through, -office browsers behind another single address (an office NAT)
// arrive as people do, through the cookie check, and must get a session
// and, on their second visit, the count 2. The returning browsers then
// come back in the load: one given a new session lost its old one.
func (l *loader) flood(ctx context.Context, opt options, say func(string, ...any)) *floodResult {
	fr := &floodResult{}
	say("flood: %d connections of first visits from %s for %s", opt.floodConns, floodAddr, opt.flood)
	floodCtx, stop := context.WithTimeout(ctx, opt.flood)
	defer stop()
	client := newClient(l.client.Addr, opt.floodConns, opt.timeout)
	var requests, stored, failed atomic.Int64
	var wg sync.WaitGroup
	for range opt.floodConns {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for floodCtx.Err() == nil {
				req.Reset()
				resp.Reset()
				req.SetRequestURI(l.base + "/catalog/")
				req.Header.Set("Cookie", "cookietest=1")
				req.Header.Set("X-Forwarded-For", floodAddr)
				requests.Add(1)
				if err := client.DoTimeout(req, resp, opt.timeout); err != nil || resp.StatusCode() != fasthttp.StatusOK {
					failed.Add(1)
					continue
				}
				if (&browser{}).keepHas(resp, "sessionid") {
					stored.Add(1)
				}
			}
		})
	}

	select {
	case <-floodCtx.Done():
	case <-time.After(opt.flood / 2):
		l.office(floodCtx, opt, fr)
	}
	wg.Wait()
	fr.requests, fr.stored, fr.failed = requests.Load(), stored.Load(), failed.Load()
	say("flood over: %d first visits, %d given a session; office: %d of %d got a session, %d then a count of 2",
		fr.requests, fr.stored, fr.officeMade, opt.office, fr.officeCounted)
	return fr
}

// office brings -office browsers behind officeAddr through their first and
// second visits.
func (l *loader) office(ctx context.Context, opt options, fr *floodResult) {
	var mu sync.Mutex
	problem := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(fr.officeProblems) < 5 {
			fr.officeProblems = append(fr.officeProblems, fmt.Sprintf(format, a...))
		}
	}
	eachIndex(ctx, opt.office, min(opt.office, 16), func(i int, req *fasthttp.Request, resp *fasthttp.Response) {
		b := &browser{addr: officeAddr}
		if _, err := l.firstVisit(b, req, resp); err != nil {
			problem("office browser %d, first visit: %v", i, err)
			return
		}
		mu.Lock()
		fr.officeMade++
		mu.Unlock()
		if err := l.get(req, resp, "/catalog/", b); err != nil || resp.StatusCode() != fasthttp.StatusOK {
			problem("office browser %d, second visit: %v (status %d)", i, err, resp.StatusCode())
			return
		}
		if n, known, _ := visitCount(resp.Body()); !known || n != 2 {
			problem("office browser %d, second visit: count %d (known %v), want 2", i, n, known)
			return
		}
		mu.Lock()
		fr.officeCounted++
		mu.Unlock()
	})
}

// keepHas updates b from resp's cookies and reports whether it now holds
// the cookie name.
func (b *browser) keepHas(resp *fasthttp.Response, name string) bool {
	b.keep(resp)
	return b.has(name)
}
