// Command gen writes haa's configuration reference (deploy/docs/config.md)
// and API reference (deploy/docs/api.md) from the comments of
// proto/haa/v1/*.proto. It reads the protos, comments included, through
// `buf build` (a google.protobuf.FileDescriptorSet with SourceCodeInfo).
// Run it from the repository root, as `make docs` does:
//
//	go run ./deploy/docs/gen -buf .tools/buf -out deploy/docs
//
// -missing lists the configuration fields whose comments state no default,
// unit or keepalived keyword, instead of writing anything.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

const pkg = "haa.v1"

func main() {
	buf := flag.String("buf", ".tools/buf", "the buf binary (make tools installs it)")
	root := flag.String("root", ".", "the repository root (where buf.yaml is)")
	in := flag.String("in", "", "read this FileDescriptorSet (binary, with source info) instead of running buf")
	out := flag.String("out", "deploy/docs", "directory to write config.md and api.md to")
	miss := flag.Bool("missing", false, "list the configuration fields whose comments lack a default, unit or keepalived keyword, and exit")
	flag.Parse()

	if err := run(*buf, *root, *in, *out, *miss); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(buf, root, in, out string, miss bool) error {
	var fds *descriptorpb.FileDescriptorSet
	var err error
	if in != "" {
		fds, err = readSet(in)
	} else {
		fds, err = build(buf, root)
	}
	if err != nil {
		return err
	}
	m, err := newModel(fds, pkg)
	if err != nil {
		return err
	}
	if miss {
		for _, l := range missing(m) {
			fmt.Println(l)
		}
		return nil
	}
	docs, err := Generate(m)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(out, n), docs[n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// build runs `buf build` in root and returns the descriptor set of its
// module, comments included.
func build(buf, root string) (*descriptorpb.FileDescriptorSet, error) {
	path := buf
	switch {
	case !strings.Contains(buf, "/"):
		p, err := exec.LookPath(buf)
		if err != nil {
			return nil, fmt.Errorf("%s not found in PATH: run make tools (it installs .tools/buf)", buf)
		}
		path = p
	case !filepath.IsAbs(buf):
		path = filepath.Join(root, buf) // relative to the repository root
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("buf not found at %s: run make tools (it installs .tools/buf)", path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // it runs in root
	}
	cmd := exec.Command(path, "build", "--as-file-descriptor-set", "-o", "-#format=binpb")
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s build: %v: %s", path, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return unmarshalSet(stdout.Bytes())
}

func readSet(path string) (*descriptorpb.FileDescriptorSet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return unmarshalSet(b)
}

func unmarshalSet(b []byte) (*descriptorpb.FileDescriptorSet, error) {
	if len(b) == 0 {
		return nil, errors.New("empty descriptor set")
	}
	fds := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, fds); err != nil {
		return nil, fmt.Errorf("read descriptor set: %w", err)
	}
	return fds, nil
}
