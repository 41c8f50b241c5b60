// Package livetest holds what the integration tests of clients/go and its subpackages share: the live service's
// socket (clients/go/run-tests exports it) and polling with a deadline.
package livetest

import (
	"context"
	"os"
	"testing"
	"time"
)

// Socket returns ENGINE_STORE_SOCKET. Without it the test fails under CI (CI set, not false/0) and skips otherwise.
func Socket(t testing.TB) string {
	t.Helper()
	s := os.Getenv("ENGINE_STORE_SOCKET")
	if s == "" {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal("ENGINE_STORE_SOCKET is not set under CI: run clients/go/run-tests")
		}
		t.Skip("ENGINE_STORE_SOCKET not set (clients/go/run-tests sets it)")
	}
	return s
}

// Ctx is a 60 s context ended with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Poll calls check every 50 ms until it returns nil; after within, the test fails with what and check's last error.
func Poll(t testing.TB, what string, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
