package keepalived

// maxDepth bounds block nesting. keepalived's deepest blocks are four
// levels (virtual_server > real_server > HTTP_GET > url); anything much
// deeper is a missing }.
const maxDepth = 8

// stmt is one statement: a keyword, its values on the same line, and
// optionally a block. `{` may follow on the next line.
type stmt struct {
	kw       token
	args     []token
	hasBlock bool
	open     token // the { of the block
	block    []*stmt
}

// parser builds statements from tokens.
type parser struct {
	toks []token
	i    int
	r    *report
	// stopped is set by a problem after which the rest cannot be read
	// reliably (nesting too deep).
	stopped bool
	// slab is where statements are taken from, a chunk at a time (one
	// allocation each was a tenth of a large file's conversion).
	slab []stmt
}

// newStmt is a statement from the slab.
func (p *parser) newStmt(t token) *stmt {
	if len(p.slab) == 0 {
		p.slab = make([]stmt, 256)
	}
	st := &p.slab[0]
	p.slab = p.slab[1:]
	st.kw = t
	return st
}

// parse reads the statements of a token stream. Unbalanced braces are
// errors at the line of the brace that has no partner.
func parse(toks []token, r *report) []*stmt {
	p := &parser{toks: toks, r: r}
	return p.list(0, nil)
}

// list reads statements up to the } that closes owner's block (depth > 0)
// or the end of the input (depth 0).
func (p *parser) list(depth int, owner *stmt) []*stmt {
	var out []*stmt
	for p.i < len(p.toks) && !p.stopped && !p.r.full() {
		t := p.toks[p.i]
		switch {
		case t.brace("}"):
			p.i++
			if depth == 0 {
				p.r.errorf(t, "", "} closes no block: remove it, or add the { it was meant to close")
				continue
			}
			return out
		case t.brace("{"):
			p.i++
			p.r.errorf(t, "", "{ without a keyword: write KEYWORD { ... } on one line, or remove the brace")
			anon := &stmt{kw: t, hasBlock: true, open: t}
			p.nested(depth, anon)
			continue
		}
		st := p.newStmt(t)
		p.i++
		start := p.i
		for p.i < len(p.toks) && p.toks[p.i].line == t.line && !p.toks[p.i].brace("{") && !p.toks[p.i].brace("}") {
			p.i++
		}
		if p.i > start {
			// The values are the stream's tokens, not a copy.
			st.args = p.toks[start:p.i:p.i]
		}
		if p.i < len(p.toks) && p.toks[p.i].brace("{") {
			st.hasBlock, st.open = true, p.toks[p.i]
			p.i++
			p.nested(depth, st)
		}
		out = append(out, st)
	}
	if depth > 0 && !p.stopped && !p.r.full() {
		p.r.errorf(owner.open, owner.kw.text, "the block opened here is never closed: add the } that ends it")
	}
	return out
}

func (p *parser) nested(depth int, owner *stmt) {
	if depth+1 > maxDepth {
		p.r.errorf(owner.open, owner.kw.text, "blocks nested more than %d deep: a } is probably missing above this line", maxDepth)
		p.stopped = true
		return
	}
	owner.block = p.list(depth+1, owner)
}
