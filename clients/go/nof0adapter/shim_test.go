package nof0adapter

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The README's nof0 shim and wiring lines compile against nof0's own type definitions (testdata/nof0: copies of
// nof0's pkg/manager, executor, exchange and journal types), so the mirrors convert as the README says.
func TestReadmeShimCompiles(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	shim := goBlock(t, string(readme), "// Package enginestoreshim")
	wiring := goBlock(t, string(readme), "esClient, err := enginestore.Dial")
	client, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyTree(t, "testdata/nof0", dir)
	write(t, filepath.Join(dir, "go.mod"), "module nof0-api\n\ngo 1.19\n\nrequire enginestore v0.0.0\n\nreplace enginestore => "+client+"\n")
	write(t, filepath.Join(dir, "internal/persistence/enginestoreshim/shim.go"), shim)
	write(t, filepath.Join(dir, "cmd/llm/main.go"), `package main

import (
	"context"
	"log"

	"enginestore"
	"enginestore/nof0adapter"

	"nof0-api/internal/persistence/enginestoreshim"
	executorpkg "nof0-api/pkg/executor"
	managerpkg "nof0-api/pkg/manager"
)

func main() {
	fatalf := log.Fatalf
	var persistService managerpkg.PersistenceService
`+wiring+`
	if _, ok := persistService.(executorpkg.ConversationRecorder); !ok {
		fatalf("not a ConversationRecorder")
	}
}
`)
	cmd := exec.Command(goBin, "vet", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's shim does not compile against nof0's types: %v\n%s", err, out)
	}
}

// goBlock returns the ```go block of text whose first line starts with start.
func goBlock(t *testing.T, text, start string) string {
	t.Helper()
	for _, part := range strings.Split(text, "```go\n")[1:] {
		if strings.HasPrefix(part, start) {
			return strings.SplitN(part, "```", 2)[0]
		}
	}
	t.Fatalf("README has no ```go block starting with %q", start)
	return ""
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		b, err := os.ReadFile(path)
		if err == nil {
			write(t, filepath.Join(to, rel), string(b))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
