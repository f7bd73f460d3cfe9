// Command ollama_template renders an Ollama Modelfile TEMPLATE for a conversation the way
// the Ollama server does (v0.33: server/routes.go ChatHandler, server/prompt.go,
// template/template.go), with Go's own text/template, so that Amicus' tests compare the
// prompts the app builds with what Ollama really renders. Standard library only.
//
// Input on stdin: a JSON array of cases; output on stdout: a JSON array of results.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

type inputMessage struct {
	Role     string `json:"role"`
	Content  string `json:"content"`
	Thinking string `json:"thinking"`
}

type renderCase struct {
	Template string         `json:"template"`
	System   string         `json:"system"`   // the Modelfile SYSTEM
	Preset   []inputMessage `json:"preset"`   // the Modelfile MESSAGEs
	Messages []inputMessage `json:"messages"` // the request's conversation
	Think    *bool          `json:"think"`    // the request's "think"; null when absent
	// Server applies the chat handler's rules around the template: thinking defaults to
	// on for a thinking-capable template, and is refused for any other.
	Server bool `json:"server"`
	// Kind "int", "float" or "bool" asks instead how api.FormatParams reads Text:
	// strconv.ParseInt(Text, 10, 64), ParseFloat(Text, 32) or ParseBool(Text).
	Kind string `json:"kind"`
	Text string `json:"text"`
}

type renderResult struct {
	Prompt     string `json:"prompt"`
	Error      string `json:"error,omitempty"`
	Thinking   bool   `json:"thinking_capable"`
	OpeningTag string `json:"opening_tag"`
	ClosingTag string `json:"closing_tag"`
}

// templateMessage is what a template sees in .Messages (Ollama's own field set).
type templateMessage struct {
	Role       string
	Content    string
	Thinking   string
	Images     []string
	ToolCalls  []any
	ToolName   string
	ToolCallID string
}

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate":      func(...string) string { return time.Now().Format("2006-01-02") },
	"yesterdayDate":    func(...string) string { return time.Now().AddDate(0, 0, -1).Format("2006-01-02") },
	"toTypeScriptType": func(any) string { return "any" },
}

func main() {
	var cases []renderCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	results := make([]renderResult, len(cases))
	for i, c := range cases {
		if c.Kind != "" {
			results[i] = parseValue(c.Kind, c.Text)
		} else {
			results[i] = render(c)
		}
	}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	if err := out.Encode(results); err != nil {
		os.Exit(1)
	}
}

func parseValue(kind, text string) renderResult {
	var value any
	var err error
	switch kind {
	case "int":
		value, err = strconv.ParseInt(text, 10, 64)
	case "float":
		var f float64
		f, err = strconv.ParseFloat(text, 32)
		value = strconv.FormatFloat(f, 'g', -1, 32)
	case "bool":
		value, err = strconv.ParseBool(text)
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		return renderResult{Error: err.Error()}
	}
	return renderResult{Prompt: fmt.Sprint(value)}
}

func render(c renderCase) renderResult {
	tmpl, err := parseTemplate(c.Template)
	if err != nil {
		return renderResult{Error: err.Error()}
	}
	var result renderResult
	result.OpeningTag, result.ClosingTag = inferThinkingTags(tmpl)
	result.Thinking = result.OpeningTag != "" && result.ClosingTag != ""
	think := c.Think
	if c.Server && result.Thinking && think == nil {
		on := true
		think = &on
	}
	if c.Server && !result.Thinking && think != nil && *think {
		result.Error = "model does not support thinking"
		return result
	}
	var b bytes.Buffer
	if err := execute(tmpl, &b, conversation(c), think); err != nil {
		result.Error = err.Error()
		return result
	}
	result.Prompt = b.String()
	return result
}

// conversation: the Modelfile MESSAGEs, then the request's, with the Modelfile SYSTEM in
// front when the request does not start with a system message of its own.
func conversation(c renderCase) []inputMessage {
	msgs := append(append([]inputMessage{}, c.Preset...), c.Messages...)
	if len(c.Messages) > 0 && c.Messages[0].Role != "system" && c.System != "" {
		msgs = append([]inputMessage{{Role: "system", Content: c.System}}, msgs...)
	}
	return msgs
}

// parseTemplate parses like Ollama: missing keys are zero values, and a template that
// names neither .Messages nor .Response gets {{ .Response }} appended.
func parseTemplate(s string) (*template.Template, error) {
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(s)
	if err != nil {
		return nil, err
	}
	vars := identifiers(tmpl)
	if !vars["messages"] && !vars["response"] {
		field := &parse.FieldNode{NodeType: parse.NodeField, Ident: []string{"Response"}}
		cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Args: []parse.Node{field}}
		pipe := &parse.PipeNode{NodeType: parse.NodePipe, Cmds: []*parse.CommandNode{cmd}}
		tmpl.Tree.Root.Nodes = append(tmpl.Tree.Root.Nodes, &parse.ActionNode{NodeType: parse.NodeAction, Pipe: pipe})
	}
	return tmpl, nil
}

// identifiers: every field and variable name the template uses, lower-cased.
func identifiers(tmpl *template.Template) map[string]bool {
	names := map[string]bool{}
	for _, t := range tmpl.Templates() {
		visit(t.Root, nil, func(n parse.Node, _ []parse.Node) {
			switch x := n.(type) {
			case *parse.FieldNode:
				for _, id := range x.Ident {
					names[strings.ToLower(id)] = true
				}
			case *parse.VariableNode:
				for _, id := range x.Ident {
					names[strings.ToLower(id)] = true
				}
			}
		})
	}
	return names
}

// visit walks a template tree depth first (pipelines before bodies), giving each node
// with its ancestors.
func visit(n parse.Node, ancestors []parse.Node, fn func(parse.Node, []parse.Node)) {
	if n == nil {
		return
	}
	fn(n, ancestors)
	ancestors = append(ancestors, n)
	switch x := n.(type) {
	case *parse.ListNode:
		for _, c := range x.Nodes {
			visit(c, ancestors, fn)
		}
	case *parse.IfNode:
		visitBranch(&x.BranchNode, ancestors, fn)
	case *parse.RangeNode:
		visitBranch(&x.BranchNode, ancestors, fn)
	case *parse.WithNode:
		visitBranch(&x.BranchNode, ancestors, fn)
	case *parse.ActionNode:
		visit(x.Pipe, ancestors, fn)
	case *parse.TemplateNode:
		if x.Pipe != nil {
			visit(x.Pipe, ancestors, fn)
		}
	case *parse.PipeNode:
		for _, c := range x.Cmds {
			visit(c, ancestors, fn)
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			visit(a, ancestors, fn)
		}
	}
}

func visitBranch(b *parse.BranchNode, ancestors []parse.Node, fn func(parse.Node, []parse.Node)) {
	ancestors = append(ancestors, b)
	if b.Pipe != nil {
		visit(b.Pipe, ancestors, fn)
	}
	if b.List != nil {
		visit(b.List, ancestors, fn)
	}
	if b.ElseList != nil {
		visit(b.ElseList, ancestors, fn)
	}
}

// inferThinkingTags is Ollama's test for a thinking-capable template: a .Thinking inside
// a range over .Messages; the nearest enclosing list's first and last text nodes,
// trimmed, are the tags (the last such .Thinking decides).
func inferThinkingTags(tmpl *template.Template) (string, string) {
	opening, closing := "", ""
	visit(tmpl.Root, nil, func(n parse.Node, ancestors []parse.Node) {
		field, ok := n.(*parse.FieldNode)
		if !ok || len(field.Ident) == 0 || field.Ident[0] != "Thinking" || !insideMessagesRange(ancestors) {
			return
		}
		for i := len(ancestors) - 1; i >= 0; i-- {
			list, ok := ancestors[i].(*parse.ListNode)
			if !ok {
				continue
			}
			if text, ok := list.Nodes[0].(*parse.TextNode); ok {
				opening = strings.TrimSpace(text.String())
			}
			if text, ok := list.Nodes[len(list.Nodes)-1].(*parse.TextNode); ok {
				closing = strings.TrimSpace(text.String())
			}
			return
		}
	})
	return opening, closing
}

func insideMessagesRange(ancestors []parse.Node) bool {
	for i := len(ancestors) - 1; i >= 0; i-- {
		r, ok := ancestors[i].(*parse.RangeNode)
		if !ok {
			continue
		}
		uses := false
		visit(r.Pipe, nil, func(n parse.Node, _ []parse.Node) {
			if f, ok := n.(*parse.FieldNode); ok && f.Ident[0] == "Messages" {
				uses = true
			}
		})
		return uses
	}
	return false
}

// collate merges consecutive messages of one role (tool messages excepted) with a blank
// line, and joins every system message into .System.
func collate(msgs []inputMessage) (string, []*templateMessage) {
	var system []string
	var out []*templateMessage
	for _, m := range msgs {
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if n := len(out); n > 0 && out[n-1].Role == m.Role && m.Role != "tool" {
			out[n-1].Content += "\n\n" + m.Content
			continue
		}
		out = append(out, &templateMessage{Role: m.Role, Content: m.Content, Thinking: m.Thinking})
	}
	return strings.Join(system, "\n\n"), out
}

func execute(tmpl *template.Template, b *bytes.Buffer, msgs []inputMessage, think *bool) error {
	system, collated := collate(msgs)
	thinking := think != nil && *think
	level := ""
	if thinking {
		level = "medium"
	}
	common := func(values map[string]any) map[string]any {
		values["Think"], values["ThinkLevel"], values["IsThinkSet"] = thinking, level, think != nil
		return values
	}
	if identifiers(tmpl)["messages"] {
		return tmpl.Execute(b, common(map[string]any{
			"System": system, "Messages": collated, "Tools": []any(nil), "Response": "",
		}))
	}
	return executeLegacy(tmpl, b, collated, common)
}

// executeLegacy renders a .Prompt/.Response template once per exchange, the last one cut
// just after .Response so that the prompt ends where the model's answer begins.
func executeLegacy(tmpl *template.Template, b *bytes.Buffer, msgs []*templateMessage,
	common func(map[string]any) map[string]any) error {
	var system, prompt, response string
	flush := func(t *template.Template) error {
		err := t.Execute(b, common(map[string]any{"System": system, "Prompt": prompt, "Response": response}))
		system, prompt, response = "", "", ""
		return err
	}
	for _, m := range msgs {
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				if err := flush(tmpl); err != nil {
					return err
				}
			}
			system = m.Content
		case "user":
			if response != "" {
				if err := flush(tmpl); err != nil {
					return err
				}
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
	}
	root := tmpl.Tree.Root.CopyList()
	cutAfterResponse(root)
	// Ollama runs the cut tree as a bare template: no functions, no missingkey option.
	last, err := template.New("").AddParseTree("", &parse.Tree{Root: root})
	if err != nil {
		return err
	}
	return flush(last)
}

// cutAfterResponse removes, in document order, everything after the first .Response.
func cutAfterResponse(root *parse.ListNode) {
	cut := false
	var walk func(parse.Node) parse.Node
	walk = func(n parse.Node) parse.Node {
		if cut {
			return nil
		}
		switch x := n.(type) {
		case *parse.FieldNode:
			for _, id := range x.Ident {
				cut = cut || id == "Response"
			}
		case *parse.ListNode:
			kept := []parse.Node{}
			for _, c := range x.Nodes {
				if k := walk(c); k != nil {
					kept = append(kept, k)
				}
			}
			x.Nodes = kept
		case *parse.IfNode:
			cutBranch(&x.BranchNode, walk)
		case *parse.RangeNode:
			cutBranch(&x.BranchNode, walk)
		case *parse.WithNode:
			cutBranch(&x.BranchNode, walk)
		case *parse.ActionNode:
			pipe := walk(x.Pipe)
			if pipe == nil {
				return nil
			}
			x.Pipe = pipe.(*parse.PipeNode)
		case *parse.PipeNode:
			return cutPipe(x, walk)
		}
		return n
	}
	walk(root)
}

func cutBranch(b *parse.BranchNode, walk func(parse.Node) parse.Node) {
	for _, list := range []**parse.ListNode{&b.List, &b.ElseList} {
		if *list == nil {
			continue
		}
		if kept, ok := walk(*list).(*parse.ListNode); ok {
			*list = kept
		} else {
			*list = &parse.ListNode{NodeType: parse.NodeList}
		}
	}
}

func cutPipe(p *parse.PipeNode, walk func(parse.Node) parse.Node) parse.Node {
	var cmds []*parse.CommandNode
	for _, c := range p.Cmds {
		var args []parse.Node
		for _, a := range c.Args {
			if k := walk(a); k != nil {
				args = append(args, k)
			}
		}
		if len(args) > 0 {
			c.Args = args
			cmds = append(cmds, c)
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	p.Cmds = cmds
	return p
}
