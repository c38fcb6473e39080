package main

import (
	"fmt"
	"strings"
)

// diffContext is the number of unchanged lines shown around a change.
const diffContext = 3

type diffOp struct {
	kind   byte // ' ', '-' or '+'
	line   string
	ai, bi int // lines of a and b before this one
}

// unifiedDiff returns the differences from a to b in unified format, ""
// when there is none. Configurations are small: a longest common
// subsequence over lines is plenty.
func unifiedDiff(aName, bName, a, b string) string {
	if a == b {
		return ""
	}
	ops := diffLines(splitLines(a), splitLines(b))
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
	for i := 0; i < len(ops); {
		// Next change.
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(0, i-diffContext)
		// Extend over changes separated by at most 2*context equal lines.
		end := i
		for j := i; j < len(ops); j++ {
			if ops[j].kind != ' ' {
				end = j + 1
			} else if j-end >= 2*diffContext {
				break
			}
		}
		end = min(len(ops), end+diffContext)
		writeHunk(&out, ops[start:end])
		i = end
	}
	return out.String()
}

func writeHunk(out *strings.Builder, ops []diffOp) {
	aLen, bLen := 0, 0
	for _, op := range ops {
		if op.kind != '+' {
			aLen++
		}
		if op.kind != '-' {
			bLen++
		}
	}
	aStart, bStart := ops[0].ai, ops[0].bi
	if aLen > 0 {
		aStart++
	}
	if bLen > 0 {
		bStart++
	}
	fmt.Fprintf(out, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
	for _, op := range ops {
		out.WriteByte(op.kind)
		out.WriteString(op.line)
		out.WriteByte('\n')
	}
}

func hunkRange(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// diffLines aligns a and b on a longest common subsequence.
func diffLines(a, b []string) []diffOp {
	n, m := len(a), len(b)
	// lcs[i][j]: length of the LCS of a[i:] and b[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []diffOp
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i], i, j})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			ops = append(ops, diffOp{'+', b[j], i, j})
			j++
		default:
			ops = append(ops, diffOp{'-', a[i], i, j})
			i++
		}
	}
	// Removals before additions within a change, as diff -u shows them.
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		e := k
		for e < len(ops) && ops[e].kind != ' ' {
			e++
		}
		stablePartition(ops[k:e])
		k = e
	}
	return ops
}

// stablePartition moves the '-' ops of a change before its '+' ops, fixing
// their line positions.
func stablePartition(ops []diffOp) {
	if len(ops) == 0 {
		return
	}
	ai, bi := ops[0].ai, ops[0].bi
	var minus, plus []diffOp
	for _, op := range ops {
		if op.kind == '-' {
			minus = append(minus, op)
		} else {
			plus = append(plus, op)
		}
	}
	k := 0
	for _, op := range minus {
		ops[k] = diffOp{'-', op.line, ai, bi}
		ai++
		k++
	}
	for _, op := range plus {
		ops[k] = diffOp{'+', op.line, ai, bi}
		bi++
		k++
	}
}
