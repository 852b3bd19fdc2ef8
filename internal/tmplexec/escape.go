// Copyright 2011 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in Go's LICENSE file.
//
// The escapers below are html/template's (html.go, url.go, content.go),
// rewritten to append to a buffer and to return their input when it needs
// no change, so that printing a value allocates nothing.

package tmplexec

import (
	"fmt"
	htmltemplate "html/template"
	"reflect"
	"strconv"
	"strings"
)

// escaper is one of html/template's escaping functions.
type escaper uint8

const (
	// htmlEscaper is html/template's htmlescaper, attrescaper and
	// rcdataescaper: for plain text (the only text printed here) the
	// three are the same function.
	htmlEscaper escaper = iota
	urlFilter
	urlNormalizer
	urlEscaper
)

// escapers are the escapers the site's templates need, by the name
// html/template gives them in a pipeline; New refuses any other.
var escapers = map[string]escaper{
	"_html_template_htmlescaper":   htmlEscaper,
	"_html_template_attrescaper":   htmlEscaper,
	"_html_template_rcdataescaper": htmlEscaper,
	"_html_template_urlfilter":     urlFilter,
	"_html_template_urlnormalizer": urlNormalizer,
	"_html_template_urlescaper":    urlEscaper,
}

// appendTo appends s escaped to dst.
func (e escaper) appendTo(dst []byte, s string) []byte {
	switch e {
	case htmlEscaper:
		return appendHTML(dst, s)
	case urlFilter:
		return append(dst, filterURL(s)...)
	default:
		return appendURL(dst, s, e == urlNormalizer)
	}
}

// apply is s escaped, for an escaper followed by another.
func (e escaper) apply(s string) string {
	switch e {
	case htmlEscaper:
		if strings.ContainsFunc(s, func(r rune) bool { return r < rune(len(htmlReplacementTable)) && htmlReplacementTable[r] != "" }) {
			return string(appendHTML(nil, s))
		}
	case urlFilter:
		return filterURL(s)
	default:
		norm := e == urlNormalizer
		for i := range len(s) {
			if !urlKeeps(s, i, norm) {
				return string(appendURL(make([]byte, 0, len(s)+16), s, norm))
			}
		}
	}
	return s
}

// print appends the value of n's expression, escaped.
func (s *state) print(b *body, dot reflect.Value, n *node) error {
	v, err := s.eval(b, dot, n.expr)
	if err != nil {
		return err
	}
	// The value as html/template's stringify sees it; the usual kinds are
	// formatted here without fmt, on the stack.
	var num [24]byte
	var text string
	v = indirectInterface(v)
	var typ reflect.Type
	if v.IsValid() {
		typ = v.Type()
	}
	switch {
	case typ == nil:
		// A nil argument: stringify prints nothing.
	case typ == stringType:
		text = v.String()
	case typ.NumMethod() == 0 && v.Kind() == reflect.String && !contentTypes[typ]:
		text = v.String()
	case typ.NumMethod() == 0 && v.Kind() == reflect.Bool:
		text = strconv.FormatBool(v.Bool())
	case typ.NumMethod() == 0 && v.CanInt():
		text = string(strconv.AppendInt(num[:0], v.Int(), 10))
	case typ.NumMethod() == 0 && v.CanUint():
		text = string(strconv.AppendUint(num[:0], v.Uint(), 10))
	default:
		if text, err = sprint(v); err != nil {
			return s.errorf(b, "%v", err)
		}
	}
	last := len(n.escapers) - 1
	for _, e := range n.escapers[:last] {
		text = e.apply(text)
	}
	s.out = n.escapers[last].appendTo(s.out, text)
	return nil
}

var stringType = reflect.TypeFor[string]()

// contentTypes are html/template's types of trusted content, which its
// escapers pass through or treat apart. They are refused here.
var contentTypes = map[reflect.Type]bool{
	reflect.TypeFor[htmltemplate.CSS]():      true,
	reflect.TypeFor[htmltemplate.HTML]():     true,
	reflect.TypeFor[htmltemplate.HTMLAttr](): true,
	reflect.TypeFor[htmltemplate.JS]():       true,
	reflect.TypeFor[htmltemplate.JSStr]():    true,
	reflect.TypeFor[htmltemplate.URL]():      true,
	reflect.TypeFor[htmltemplate.Srcset]():   true,
}

// sprint is html/template's stringify of one argument that is not a
// string, and refuses content types.
func sprint(v reflect.Value) (string, error) {
	if !v.CanInterface() {
		return "", fmt.Errorf("can't print value of type %s", v.Type())
	}
	d := v
	for d.Kind() == reflect.Pointer && !d.IsNil() {
		d = d.Elem()
	}
	if contentTypes[d.Type()] {
		return "", fmt.Errorf("printing a value of type %s is not supported", d.Type())
	}
	return fmt.Sprint(indirectToStringerOrError(v)), nil
}

var fmtStringerType = reflect.TypeFor[fmt.Stringer]()

// indirectToStringerOrError returns the value, after dereferencing as many times
// as necessary to reach the base type (or nil) or an implementation of fmt.Stringer
// or error.
func indirectToStringerOrError(v reflect.Value) any {
	for !v.Type().Implements(fmtStringerType) && !v.Type().Implements(errorType) && v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return v.Interface()
}

// htmlReplacementTable contains the runes that need to be escaped
// inside a quoted attribute value or in a text node.
var htmlReplacementTable = []string{
	// https://www.w3.org/TR/html5/syntax.html#attribute-value-(unquoted)-state
	// U+0000 NULL Parse error. Append a U+FFFD REPLACEMENT
	// CHARACTER character to the current attribute's value.
	// "
	// and similarly
	// https://www.w3.org/TR/html5/syntax.html#before-attribute-value-state
	0:    "\uFFFD",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

// appendHTML is htmlReplacer(s, htmlReplacementTable, true). That one
// walks runes, but with badRunes true only runes below len(table), all
// ASCII, change; every byte of any other rune, or of invalid UTF-8, is
// 0x80 or more, so a walk over bytes changes the same ones.
func appendHTML(dst []byte, s string) []byte {
	written := 0
	for i := range len(s) {
		if c := s[i]; int(c) < len(htmlReplacementTable) && htmlReplacementTable[c] != "" {
			dst = append(dst, s[written:i]...)
			dst = append(dst, htmlReplacementTable[c]...)
			written = i + 1
		}
	}
	return append(dst, s[written:]...)
}

const filterFailsafe = "ZgotmplZ"

// filterURL is urlFilter: s unless it has a scheme other than http,
// https or mailto.
func filterURL(s string) string {
	if !isSafeURL(s) {
		return "#" + filterFailsafe
	}
	return s
}

// isSafeURL is true if s is a relative URL or if URL has a protocol in
// (http, https, mailto).
func isSafeURL(s string) bool {
	if protocol, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(protocol, "/") {
		if !strings.EqualFold(protocol, "http") && !strings.EqualFold(protocol, "https") && !strings.EqualFold(protocol, "mailto") {
			return false
		}
	}
	return true
}

// appendURL is processURLOnto: it normalizes (when norm is true) or
// escapes s to a valid hierarchical or opaque URL part.
func appendURL(dst []byte, s string, norm bool) []byte {
	const hex = "0123456789abcdef"
	written := 0
	for i := range len(s) {
		if !urlKeeps(s, i, norm) {
			dst = append(dst, s[written:i]...)
			dst = append(dst, '%', hex[s[i]>>4], hex[s[i]&15])
			written = i + 1
		}
	}
	return append(dst, s[written:]...)
}

// urlKeeps reports whether processURLOnto leaves s[i] as it is.
func urlKeeps(s string, i int, norm bool) bool {
	c := s[i]
	switch c {
	// Single quote and parens are sub-delims in RFC 3986, but we
	// escape them so the output can be embedded in single
	// quoted attributes and unquoted CSS url(...) constructs.
	// Single quotes are reserved in URLs, but are only used in
	// the obsolete "mark" rule in an appendix in RFC 3986
	// so can be safely encoded.
	case '!', '#', '$', '&', '*', '+', ',', '/', ':', ';', '=', '?', '@', '[', ']':
		return norm
	// Unreserved according to RFC 3986 sec 2.3
	case '-', '.', '_', '~':
		return true
	case '%':
		// When normalizing do not re-encode valid escapes.
		return norm && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2])
	}
	// Unreserved according to RFC 3986 sec 2.3
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
