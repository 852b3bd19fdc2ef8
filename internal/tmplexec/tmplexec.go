// Package tmplexec executes html/template pages without text/template's
// reflective function calls.
//
// html/template decides how every action is escaped and records each
// decision in the parse tree, as calls to its escaper functions appended
// to the action's pipeline ({{.Title | _html_template_htmlescaper}}).
// text/template then calls those escapers through reflect.Value.Call,
// which was most of the CPU of rendering a page (see golang/go#81610).
// This package lets html/template do its analysis, takes the escaped
// trees and executes them itself, calling its own copies of the escapers
// directly. html/template stays the only source of markup and of
// escaping decisions; only the execution is ours.
//
// It runs exactly the constructs the site's templates use. New refuses
// any other node, function or escaper, so a template that outgrows it
// fails at start; what depends on the data's types (ranging over a map,
// say) is refused when executed, as an error. routes/render_diff_test.go
// compares every page with html/template's own output. Values of html/template's content types
// (template.HTML and the like) are refused when printed: the site never
// trusts text as markup.
package tmplexec

import (
	"errors"
	htmltemplate "html/template"
	"io"
	"reflect"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
)

// Template is one page ready to execute: its escaped trees compiled.
type Template struct {
	name string
	root *body
}

// body is a template's compiled list; a template call points at its body.
type body struct {
	name string
	list []node
}

// New escapes t (html/template does so lazily, on first execution) and
// compiles its escaped trees. funcs must be the functions t was parsed
// with. constant names those of them whose result depends on their
// arguments alone and never changes (a page's nav links, a static file's
// URL): New calls them once and renders to text, once, every part of the
// page that depends on nothing else. t must not be changed afterwards; it
// may still be executed.
func New(t *htmltemplate.Template, funcs htmltemplate.FuncMap, constant ...string) (*Template, error) {
	// Executing is the only public way to make html/template escape a
	// set. Escaping does not depend on the data, so nil will do; an
	// error while executing with nil data (a function refusing a zero
	// argument) comes after escaping and is no concern of ours.
	if err := t.Execute(io.Discard, nil); err != nil {
		var execErr template.ExecError
		if !errors.As(err, &execErr) {
			return nil, err
		}
	}
	c := &compiler{set: t, funcs: funcs, bodies: map[string]*body{}, constant: map[string]bool{}}
	for _, name := range constant {
		if _, ok := funcs[name]; !ok {
			return nil, errors.New("tmplexec: constant function " + name + " is not among the functions")
		}
		c.constant[name] = true
	}
	root, err := c.body(t.Name(), t.Tree)
	if err != nil {
		return nil, err
	}
	return &Template{name: t.Name(), root: root}, nil
}

// Execute appends the page for data to dst.
func (t *Template) Execute(dst []byte, data any) ([]byte, error) {
	dot, ok := data.(reflect.Value)
	if !ok {
		dot = reflect.ValueOf(data)
	}
	vars := varStacks.Get().(*[]variable)
	s := state{out: dst, vars: append((*vars)[:0], variable{"$", dot})}
	err := s.walk(t.root, dot, t.root.list)
	clear(s.vars[:cap(s.vars)]) // keep no data alive in the pool
	*vars = s.vars[:0]
	varStacks.Put(vars)
	return s.out, err
}

// varStacks are kept for reuse: escape analysis sends a stack of
// variables to the heap, where state itself is not.
var varStacks = sync.Pool{New: func() any {
	vars := make([]variable, 0, 16)
	return &vars
}}

// Name is the name of the template t was made from.
func (t *Template) Name() string { return t.name }

// compiler turns escaped parse trees into nodes, refusing what it does
// not know.
type compiler struct {
	constant map[string]bool // functions New may call once
	set      *htmltemplate.Template
	funcs    htmltemplate.FuncMap
	bodies   map[string]*body
	tree     *parse.Tree // the tree being compiled, for error positions
}

func (c *compiler) body(name string, tree *parse.Tree) (*body, error) {
	if b, ok := c.bodies[name]; ok {
		return b, nil // compiled, or being compiled: a recursive call
	}
	if tree == nil || tree.Root == nil {
		return nil, errors.New("tmplexec: template " + name + " is empty or undefined")
	}
	b := &body{name: name}
	c.bodies[name] = b
	outer := c.tree
	c.tree = tree
	list, err := c.list(tree.Root)
	c.tree = outer
	b.list = list
	return b, err
}

func (c *compiler) list(l *parse.ListNode) ([]node, error) {
	if l == nil {
		return nil, nil
	}
	var nodes []node
	for _, n := range l.Nodes {
		cn, skip, err := c.node(n)
		if err != nil {
			return nil, err
		}
		if skip {
			continue
		}
		cn = c.fold(cn)
		if last := len(nodes) - 1; cn.kind == textNode && last >= 0 && nodes[last].kind == textNode {
			nodes[last].text = append(nodes[last].text[:len(nodes[last].text):len(nodes[last].text)], cn.text...)
			continue
		}
		nodes = append(nodes, cn)
	}
	return nodes, nil
}

// fold renders n to text now if it depends on nothing but constant
// functions and literals, as the nav links and the stylesheet's URL do.
// A node whose rendering fails is left to fail, or not, at execution.
func (c *compiler) fold(n node) node {
	if n.kind == textNode || !c.constantNode(&n, false) {
		return n
	}
	s := state{vars: []variable{{name: "$"}}}
	if err := s.walk(&body{name: c.tree.Name}, reflect.Value{}, []node{n}); err != nil {
		return n
	}
	return node{kind: textNode, text: s.out}
}

// constantNode tells whether n renders the same every time: dotConstant
// says whether dot is itself derived from constants (inside a range or
// with over one).
func (c *compiler) constantNode(n *node, dotConstant bool) bool {
	switch n.kind {
	case textNode:
		return true
	case printNode:
		return c.constantExpr(n.expr, dotConstant)
	case ifNode:
		return c.constantExpr(n.expr, dotConstant) && c.constantList(n.list, dotConstant) && c.constantList(n.elseList, dotConstant)
	case withNode, rangeNode:
		return len(n.decls) == 0 && c.constantExpr(n.expr, dotConstant) &&
			c.constantList(n.list, true) && c.constantList(n.elseList, dotConstant)
	}
	return false // a template call, or a kind added later
}

func (c *compiler) constantList(l []node, dotConstant bool) bool {
	for i := range l {
		if !c.constantNode(&l[i], dotConstant) {
			return false
		}
	}
	return true
}

func (c *compiler) constantExpr(x *expr, dotConstant bool) bool {
	switch x.kind {
	case constExpr:
		return true
	case dotExpr, fieldExpr:
		return dotConstant
	case funcExpr:
		if !c.constant[x.name] {
			return false
		}
		fallthrough
	case eqExpr, gtExpr:
		for _, a := range x.args {
			if !c.constantExpr(a, dotConstant) {
				return false
			}
		}
		return true
	}
	return false // variables, even $: the data
}

func (c *compiler) node(n parse.Node) (cn node, skip bool, err error) {
	switch n := n.(type) {
	case *parse.TextNode:
		return node{kind: textNode, text: n.Text}, false, nil
	case *parse.CommentNode:
		return node{}, true, nil
	case *parse.ActionNode:
		cn, err = c.action(n)
	case *parse.IfNode:
		cn, err = c.branch(ifNode, &n.BranchNode)
	case *parse.WithNode:
		cn, err = c.branch(withNode, &n.BranchNode)
	case *parse.RangeNode:
		cn, err = c.branch(rangeNode, &n.BranchNode)
	case *parse.TemplateNode:
		cn, err = c.call(n)
	default:
		err = c.refuse(n, "this kind of node")
	}
	return cn, false, err
}

// action compiles {{pipeline | escapers...}}: html/template gives every
// action that prints at least one escaper.
func (c *compiler) action(n *parse.ActionNode) (node, error) {
	p := n.Pipe
	if len(p.Decl) > 0 {
		return node{}, c.refuse(n, "a variable declared in an action")
	}
	last := len(p.Cmds)
	for last > 1 && isEscaperCmd(p.Cmds[last-1]) {
		last--
	}
	if last != 1 || last == len(p.Cmds) {
		return node{}, c.refuse(n, "an action other than one command followed by escapers")
	}
	var escs []escaper
	for _, cmd := range p.Cmds[1:] {
		e, ok := escapers[cmd.Args[0].(*parse.IdentifierNode).Ident]
		if !ok {
			return node{}, c.refuse(cmd, "escaper "+cmd.String())
		}
		escs = append(escs, e)
	}
	x, err := c.command(p.Cmds[0])
	return node{kind: printNode, expr: x, escapers: escs}, err
}

func isEscaperCmd(cmd *parse.CommandNode) bool {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	return ok && len(cmd.Args) == 1 && strings.HasPrefix(id.Ident, "_html_template_")
}

func (c *compiler) branch(kind nodeKind, n *parse.BranchNode) (node, error) {
	p := n.Pipe
	if p.IsAssign || len(p.Decl) > 0 && kind != rangeNode || len(p.Decl) > 2 {
		return node{}, c.refuse(n, "this variable declaration")
	}
	x, err := c.pipe(p)
	if err != nil {
		return node{}, err
	}
	cn := node{kind: kind, expr: x}
	for _, d := range p.Decl {
		cn.decls = append(cn.decls, d.Ident[0])
	}
	if cn.list, err = c.list(n.List); err != nil {
		return node{}, err
	}
	cn.elseList, err = c.list(n.ElseList)
	return cn, err
}

func (c *compiler) call(n *parse.TemplateNode) (node, error) {
	// A template called outside text (inside <title>, an attribute, a
	// script) is escaped as a copy html/template keeps to itself, under a
	// derived name: calls are made where the page's text flows.
	t := c.set.Lookup(n.Name)
	if t == nil || t.Tree == nil {
		return node{}, c.refuse(n, "a call of template "+n.Name+" (undefined, or called outside the page's text)")
	}
	callee, err := c.body(n.Name, t.Tree)
	if err != nil {
		return node{}, err
	}
	cn := node{kind: callNode, callee: callee}
	if n.Pipe != nil {
		if len(n.Pipe.Decl) > 0 {
			return node{}, c.refuse(n, "a variable declared in a template call")
		}
		cn.expr, err = c.pipe(n.Pipe)
	}
	return cn, err
}

// pipe compiles the pipeline of an if, with, range or template call:
// one command, with no escapers since nothing is printed.
func (c *compiler) pipe(p *parse.PipeNode) (*expr, error) {
	if len(p.Cmds) != 1 {
		return nil, c.refuse(p, "a pipeline of more than one command")
	}
	return c.command(p.Cmds[0])
}

// command compiles a value: a field chain, a variable, dot, or a call of
// nav-like functions and the builtins eq and gt.
func (c *compiler) command(cmd *parse.CommandNode) (*expr, error) {
	if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok {
		return c.funcCall(id, cmd.Args[1:])
	}
	if len(cmd.Args) > 1 {
		return nil, c.refuse(cmd, "arguments to a field or method")
	}
	return c.operand(cmd.Args[0], false)
}

// operand compiles a command's single value or a function's argument;
// constants are allowed only as arguments of builtins.
func (c *compiler) operand(n parse.Node, constants bool) (*expr, error) {
	switch n := n.(type) {
	case *parse.DotNode:
		return &expr{kind: dotExpr}, nil
	case *parse.FieldNode:
		return &expr{kind: fieldExpr, fields: sites(n.Ident)}, nil
	case *parse.VariableNode:
		return &expr{kind: varExpr, name: n.Ident[0], fields: sites(n.Ident[1:])}, nil
	case *parse.StringNode: // a string is a string to any function, unlike numbers
		return &expr{kind: constExpr, value: reflect.ValueOf(n.Text)}, nil
	case *parse.BoolNode:
		if constants {
			return &expr{kind: constExpr, value: reflect.ValueOf(n.True)}, nil
		}
	case *parse.NumberNode:
		// Only what text/template reads as an int (see its idealConstant).
		if constants && n.IsInt && !n.IsComplex && int64(int(n.Int64)) == n.Int64 &&
			(!n.IsFloat || !strings.ContainsAny(n.Text, ".eEpP") || isHexOrRune(n.Text)) {
			return &expr{kind: constExpr, value: reflect.ValueOf(int(n.Int64))}, nil
		}
	}
	return nil, c.refuse(n, "operand "+n.String())
}

func (c *compiler) funcCall(id *parse.IdentifierNode, args []parse.Node) (*expr, error) {
	x := &expr{name: id.Ident}
	if f, ok := c.funcs[id.Ident]; ok {
		fn := reflect.ValueOf(f)
		if fn.Kind() != reflect.Func || fn.Type().IsVariadic() || fn.Type().NumIn() != len(args) || !goodResults(fn.Type()) {
			return nil, c.refuse(id, "function "+id.Ident+" with this signature or these arguments")
		}
		x.kind, x.fn = funcExpr, fn
	} else if (id.Ident == "eq" || id.Ident == "gt") && len(args) == 2 {
		x.kind = eqExpr
		if id.Ident == "gt" {
			x.kind = gtExpr
		}
	} else {
		return nil, c.refuse(id, "function "+id.Ident)
	}
	for _, a := range args {
		ax, err := c.operand(a, x.kind != funcExpr)
		if err != nil {
			return nil, err
		}
		x.args = append(x.args, ax)
	}
	return x, nil
}

func (c *compiler) refuse(n parse.Node, what string) error {
	return errors.New("tmplexec: template " + c.tree.Name + " (" + location(c.tree, n) + "): " + what + " is not supported")
}

// location is n's place in its template's source, if it can be told:
// ErrorContext panics on some nodes of the trees html/template derives,
// which have no source text.
func location(t *parse.Tree, n parse.Node) (loc string) {
	defer func() {
		if recover() != nil {
			loc = "?"
		}
	}()
	loc, _ = t.ErrorContext(n)
	return loc
}

func sites(names []string) []*fieldSite {
	s := make([]*fieldSite, len(names))
	for i, name := range names {
		s[i] = &fieldSite{name: name}
	}
	return s
}

// isHexOrRune is text/template's isHexInt || isRuneInt.
func isHexOrRune(s string) bool {
	return strings.HasPrefix(s, "'") ||
		len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}
