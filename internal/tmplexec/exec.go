// Portions copyright 2011 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in Go's LICENSE file.
// (The semantics below follow text/template's exec.go and funcs.go.)

package tmplexec

import (
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
)

type nodeKind uint8

const (
	textNode  nodeKind = iota
	printNode          // {{expr | escapers...}}
	ifNode
	withNode
	rangeNode
	callNode // {{template "name" expr}}
)

// node is a compiled template node: one struct, switched on by kind, so
// that execution makes no dynamic calls and state stays on the stack.
type node struct {
	kind           nodeKind
	text           []byte
	expr           *expr // nil in a call without an argument
	escapers       []escaper
	decls          []string // range's $i, $x: element last, as text/template
	list, elseList []node
	callee         *body
}

type exprKind uint8

const (
	dotExpr   exprKind = iota
	fieldExpr          // .A.B on dot
	varExpr            // $x.A.B
	funcExpr           // a function of the FuncMap
	eqExpr
	gtExpr
	constExpr // an argument of eq or gt
)

type expr struct {
	kind   exprKind
	name   string // variable or function
	fields []*fieldSite
	fn     reflect.Value
	args   []*expr
	value  reflect.Value
}

type variable struct {
	name  string
	value reflect.Value
}

// maxDepth is text/template's bound on nested template calls.
const maxDepth = 100000

type state struct {
	out   []byte
	vars  []variable
	depth int
}

func (s *state) walk(b *body, dot reflect.Value, list []node) error {
	for i := range list {
		n := &list[i]
		var err error
		switch n.kind {
		case textNode:
			s.out = append(s.out, n.text...)
		case printNode:
			err = s.print(b, dot, n)
		case ifNode, withNode:
			err = s.ifOrWith(b, dot, n)
		case rangeNode:
			err = s.rangeOver(b, dot, n)
		case callNode:
			err = s.call(b, dot, n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *state) ifOrWith(b *body, dot reflect.Value, n *node) error {
	val, err := s.eval(b, dot, n.expr)
	if err != nil {
		return err
	}
	truth, err := isTrue(indirectInterface(val))
	if err != nil {
		return s.errorf(b, "if/with can't use %v", val)
	}
	switch {
	case truth && n.kind == withNode:
		return s.walk(b, val, n.list)
	case truth:
		return s.walk(b, dot, n.list)
	}
	return s.walk(b, dot, n.elseList)
}

func (s *state) rangeOver(b *body, dot reflect.Value, n *node) error {
	mark := len(s.vars)
	err := s.rangeVars(b, dot, n)
	s.pop(mark) // the declared variables end with the range
	return err
}

func (s *state) rangeVars(b *body, dot reflect.Value, n *node) error {
	val, err := s.eval(b, dot, n.expr)
	if err != nil {
		return err
	}
	// The declared variables start as the pipeline's value, as in
	// text/template; each iteration sets them.
	for _, name := range n.decls {
		s.vars = append(s.vars, variable{name, val})
	}
	val, _ = indirect(val)
	switch val.Kind() {
	case reflect.Array, reflect.Slice:
		var index reflect.Value
		if len(n.decls) == 2 {
			index = reflect.New(reflect.TypeFor[int]()).Elem() // one per range, not per element
		}
		inner := len(s.vars)
		for i := range val.Len() {
			elem := val.Index(i)
			switch len(n.decls) {
			case 2:
				index.SetInt(int64(i))
				s.vars[inner-2].value = index
				fallthrough
			case 1:
				s.vars[inner-1].value = elem
			}
			if err := s.walk(b, elem, n.list); err != nil {
				return err
			}
			s.pop(inner)
		}
		if val.Len() > 0 {
			return nil
		}
	case reflect.Invalid: // nothing to range over: the else branch
	default:
		return s.errorf(b, "range over %s is not supported", val.Type())
	}
	return s.walk(b, dot, n.elseList)
}

func (s *state) call(b *body, dot reflect.Value, n *node) error {
	if s.depth == maxDepth {
		return s.errorf(b, "exceeded maximum template depth (%v)", maxDepth)
	}
	var arg reflect.Value
	if n.expr != nil {
		var err error
		if arg, err = s.eval(b, dot, n.expr); err != nil {
			return err
		}
	}
	// A called template sees no variables but its own $, its argument.
	outer := s.vars
	s.vars = append(s.vars[len(s.vars):len(s.vars)], variable{"$", arg})
	s.depth++
	err := s.walk(n.callee, arg, n.callee.list)
	s.depth--
	s.vars = outer
	return err
}

func (s *state) pop(mark int) { s.vars = s.vars[:mark] }

func (s *state) errorf(b *body, format string, args ...any) error {
	return fmt.Errorf("tmplexec: template %s: "+format, append([]any{b.name}, args...)...)
}

func (s *state) eval(b *body, dot reflect.Value, x *expr) (reflect.Value, error) {
	switch x.kind {
	case dotExpr:
		return dot, nil
	case fieldExpr:
		return s.fieldChain(b, dot, x.fields)
	case varExpr:
		for i := len(s.vars) - 1; i >= 0; i-- {
			if s.vars[i].name == x.name {
				return s.fieldChain(b, s.vars[i].value, x.fields)
			}
		}
		return reflect.Value{}, s.errorf(b, "undefined variable %s", x.name)
	case constExpr:
		return x.value, nil
	case eqExpr, gtExpr:
		a0, err := s.eval(b, dot, x.args[0])
		if err != nil {
			return reflect.Value{}, err
		}
		a1, err := s.eval(b, dot, x.args[1])
		if err != nil {
			return reflect.Value{}, err
		}
		var truth bool
		if x.kind == eqExpr {
			truth, err = eq(a0, a1)
		} else {
			truth, err = gt(a0, a1)
		}
		if err != nil {
			return reflect.Value{}, s.errorf(b, "error calling %s: %v", x.name, err)
		}
		return reflect.ValueOf(truth), nil
	case funcExpr:
		return s.callFunc(b, dot, x)
	}
	panic("tmplexec: unknown expression")
}

func (s *state) callFunc(b *body, dot reflect.Value, x *expr) (reflect.Value, error) {
	typ := x.fn.Type()
	var argBuf [4]reflect.Value
	args := argBuf[:0]
	for i, ax := range x.args {
		v, err := s.eval(b, dot, ax)
		if err != nil {
			return reflect.Value{}, err
		}
		if v, err = validateType(v, typ.In(i)); err != nil {
			return reflect.Value{}, s.errorf(b, "%s: %v", x.name, err)
		}
		args = append(args, v)
	}
	return s.results(b, x.name, safeCall(x.fn, args))
}

// safeCall calls fn, turning a panic into an error result as text/template
// does, so that a failing function is a template error, not a crashed
// request.
func safeCall(fn reflect.Value, args []reflect.Value) (out []reflect.Value) {
	defer func() {
		if r := recover(); r != nil {
			err, ok := r.(error)
			if !ok {
				err = fmt.Errorf("%v", r)
			}
			out = []reflect.Value{reflect.Zero(fn.Type().Out(0)), reflect.ValueOf(&err).Elem()}
		}
	}()
	return fn.Call(args)
}

// results is a function's or method's value, or its error.
func (s *state) results(b *body, name string, out []reflect.Value) (reflect.Value, error) {
	if len(out) == 2 && !out[1].IsNil() {
		return reflect.Value{}, s.errorf(b, "error calling %s: %v", name, out[1].Interface())
	}
	return out[0], nil
}

func (s *state) fieldChain(b *body, v reflect.Value, fields []*fieldSite) (reflect.Value, error) {
	for _, f := range fields {
		var err error
		if v, err = s.field(b, v, f); err != nil {
			return reflect.Value{}, err
		}
	}
	return v, nil
}

// fieldSite is one .Name in a template, with what it resolved to for the
// last type seen there: a site sees one type in practice, so the lookup
// by name is made once.
type fieldSite struct {
	name  string
	cache atomic.Pointer[fieldInfo]
}

type fieldInfo struct {
	typ       reflect.Type
	method    int  // the method's index, or -1 for a field
	ptrMethod bool // a method of *typ: needs an addressable value
	index     []int
	err       error // the name resolves to nothing usable
}

func (s *state) field(b *body, recv reflect.Value, f *fieldSite) (reflect.Value, error) {
	if !recv.IsValid() {
		return reflect.Value{}, nil // text/template's missingkey=default
	}
	typ := recv.Type()
	recv, isNil := indirect(recv)
	if isNil {
		return reflect.Value{}, s.errorf(b, "nil pointer evaluating %s.%s", typ, f.name)
	}
	info := f.cache.Load()
	if info == nil || info.typ != recv.Type() {
		info = resolve(recv.Type(), f.name)
		f.cache.Store(info)
	}
	switch {
	case info.err != nil:
		return reflect.Value{}, s.errorf(b, "%v", info.err)
	case info.method >= 0:
		m := recv
		if info.ptrMethod {
			if !recv.CanAddr() {
				return reflect.Value{}, s.errorf(b, "can't evaluate field %s in type %s", f.name, typ)
			}
			m = recv.Addr()
		}
		return s.results(b, f.name, safeCall(m.Method(info.method), nil))
	}
	if len(info.index) == 1 { // not promoted from an embedded struct
		return recv.Field(info.index[0]), nil
	}
	v, err := recv.FieldByIndexErr(info.index)
	if err != nil {
		return reflect.Value{}, s.errorf(b, "%v", err)
	}
	return v, nil
}

// resolve finds name on typ as text/template would: a method of typ or
// *typ first, then a struct field. Maps are not supported.
func resolve(typ reflect.Type, name string) *fieldInfo {
	info := &fieldInfo{typ: typ, method: -1}
	m, ok := typ.MethodByName(name)
	if !ok {
		if m, ok = reflect.PointerTo(typ).MethodByName(name); ok {
			info.ptrMethod = true
		}
	}
	if ok {
		info.method = m.Index
		mt := m.Type // the receiver is its first parameter
		if mt.NumIn() != 1 || !goodResults(mt) || mt.Out(0) == reflect.TypeFor[reflect.Value]() {
			info.err = fmt.Errorf("method %s.%s: only methods of no arguments returning a value (and an error) are supported", typ, name)
		}
		return info
	}
	if typ.Kind() != reflect.Struct {
		info.err = fmt.Errorf("can't evaluate field %s in type %s (maps are not supported)", name, typ)
		return info
	}
	sf, ok := typ.FieldByName(name)
	switch {
	case !ok:
		info.err = fmt.Errorf("can't evaluate field %s in type %s", name, typ)
	case !sf.IsExported():
		info.err = fmt.Errorf("%s is an unexported field of struct type %s", name, typ)
	}
	info.index = sf.Index
	return info
}

var errorType = reflect.TypeFor[error]()

// goodResults: one result, or a result and an error.
func goodResults(t reflect.Type) bool {
	return t.NumOut() == 1 || t.NumOut() == 2 && t.Out(1) == errorType
}

// indirect steps through pointers and interfaces to a value, stopping at nil.
func indirect(v reflect.Value) (rv reflect.Value, isNil bool) {
	for ; v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface; v = v.Elem() {
		if v.IsNil() {
			return v, true
		}
	}
	return v, false
}

// indirectInterface returns the concrete value in an interface value,
// or else the zero reflect.Value.
func indirectInterface(v reflect.Value) reflect.Value {
	if v.Kind() != reflect.Interface {
		return v
	}
	if v.IsNil() {
		return reflect.Value{}
	}
	return v.Elem()
}

var errNotTruth = errors.New("no truth value")

// isTrue is text/template's truth: false, 0, nil and empty are false.
func isTrue(val reflect.Value) (bool, error) {
	if !val.IsValid() {
		return false, nil
	}
	switch val.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return val.Len() > 0, nil
	case reflect.Bool:
		return val.Bool(), nil
	case reflect.Complex64, reflect.Complex128:
		return val.Complex() != 0, nil
	case reflect.Chan, reflect.Func, reflect.Pointer, reflect.UnsafePointer, reflect.Interface:
		return !val.IsNil(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return val.Int() != 0, nil
	case reflect.Float32, reflect.Float64:
		return val.Float() != 0, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return val.Uint() != 0, nil
	case reflect.Struct:
		return true, nil
	}
	return false, errNotTruth
}

// validateType makes v fit a function's parameter of type typ, as
// text/template does for arguments, or says why it cannot.
func validateType(v reflect.Value, typ reflect.Type) (reflect.Value, error) {
	if !v.IsValid() {
		switch typ.Kind() {
		case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
			return reflect.Zero(typ), nil
		}
		return v, fmt.Errorf("invalid value; expected %s", typ)
	}
	if v.Type().AssignableTo(typ) {
		return v, nil
	}
	if v.Kind() == reflect.Interface && !v.IsNil() && v.Elem().Type().AssignableTo(typ) {
		return v.Elem(), nil
	}
	switch {
	case v.Kind() == reflect.Pointer && v.Type().Elem().AssignableTo(typ):
		if v.IsNil() {
			return v, fmt.Errorf("dereference of nil pointer of type %s", typ)
		}
		return v.Elem(), nil
	case reflect.PointerTo(v.Type()).AssignableTo(typ) && v.CanAddr():
		return v.Addr(), nil
	}
	return v, fmt.Errorf("wrong type for value; expected %s; got %s", typ, v.Type())
}

type kind int

const (
	invalidKind kind = iota
	boolKind
	complexKind
	intKind
	floatKind
	stringKind
	uintKind
)

var errBadComparisonType = errors.New("invalid type for comparison")

func basicKind(v reflect.Value) (kind, error) {
	switch v.Kind() {
	case reflect.Bool:
		return boolKind, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intKind, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return uintKind, nil
	case reflect.Float32, reflect.Float64:
		return floatKind, nil
	case reflect.Complex64, reflect.Complex128:
		return complexKind, nil
	case reflect.String:
		return stringKind, nil
	}
	return invalidKind, errBadComparisonType
}

// eq is text/template's eq of two basic values; it refuses the rest
// (text/template also compares nil and other comparable values).
func eq(arg1, arg2 reflect.Value) (bool, error) {
	arg1, arg2 = indirectInterface(arg1), indirectInterface(arg2)
	k1, _ := basicKind(arg1)
	k2, _ := basicKind(arg2)
	if k1 != k2 {
		// Special case: Can compare integer values regardless of type's sign.
		switch {
		case k1 == intKind && k2 == uintKind:
			return arg1.Int() >= 0 && uint64(arg1.Int()) == arg2.Uint(), nil
		case k1 == uintKind && k2 == intKind:
			return arg2.Int() >= 0 && arg1.Uint() == uint64(arg2.Int()), nil
		case arg1.IsValid() && arg2.IsValid():
			return false, fmt.Errorf("incompatible types for comparison: %v and %v", arg1.Type(), arg2.Type())
		}
		return false, nil
	}
	switch k1 {
	case boolKind:
		return arg1.Bool() == arg2.Bool(), nil
	case complexKind:
		return arg1.Complex() == arg2.Complex(), nil
	case floatKind:
		return arg1.Float() == arg2.Float(), nil
	case intKind:
		return arg1.Int() == arg2.Int(), nil
	case stringKind:
		return arg1.String() == arg2.String(), nil
	case uintKind:
		return arg1.Uint() == arg2.Uint(), nil
	}
	return false, fmt.Errorf("eq of %v and %v is not supported", arg1, arg2)
}

// lt evaluates the comparison a < b.
func lt(arg1, arg2 reflect.Value) (bool, error) {
	arg1 = indirectInterface(arg1)
	k1, err := basicKind(arg1)
	if err != nil {
		return false, err
	}
	arg2 = indirectInterface(arg2)
	k2, err := basicKind(arg2)
	if err != nil {
		return false, err
	}
	if k1 != k2 {
		// Special case: Can compare integer values regardless of type's sign.
		switch {
		case k1 == intKind && k2 == uintKind:
			return arg1.Int() < 0 || uint64(arg1.Int()) < arg2.Uint(), nil
		case k1 == uintKind && k2 == intKind:
			return arg2.Int() >= 0 && arg1.Uint() < uint64(arg2.Int()), nil
		}
		return false, fmt.Errorf("incompatible types for comparison: %v and %v", arg1.Type(), arg2.Type())
	}
	switch k1 {
	case floatKind:
		return arg1.Float() < arg2.Float(), nil
	case intKind:
		return arg1.Int() < arg2.Int(), nil
	case stringKind:
		return arg1.String() < arg2.String(), nil
	case uintKind:
		return arg1.Uint() < arg2.Uint(), nil
	}
	return false, errBadComparisonType // bool, complex
}

// gt is !(a < b || a == b), as text/template has it (NaN included).
func gt(arg1, arg2 reflect.Value) (bool, error) {
	lessThan, err := lt(arg1, arg2)
	if err != nil {
		return false, err
	}
	if lessThan {
		return false, nil
	}
	equal, err := eq(arg1, arg2)
	return !equal, err
}
