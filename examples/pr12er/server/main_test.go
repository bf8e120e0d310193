package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	newMux("abc123").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestRootReportsCommit(t *testing.T) {
	rec := get(t, "/")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "abc123" {
		t.Fatalf("GET / = %d %q, want 200 \"abc123\"", rec.Code, rec.Body.String())
	}
}

func TestHealthz(t *testing.T) {
	if rec := get(t, "/healthz"); rec.Code != http.StatusOK {
		t.Fatalf("GET /healthz = %d, want 200", rec.Code)
	}
}

func TestUnknownPathIs404(t *testing.T) {
	if rec := get(t, "/nope"); rec.Code != http.StatusNotFound {
		t.Fatalf("GET /nope = %d, want 404", rec.Code)
	}
}

func TestCommitFromEnvironmentWins(t *testing.T) {
	t.Setenv("COMMIT", "from-env")
	if got := buildCommit(); got != "from-env" {
		t.Fatalf("buildCommit() = %q, want \"from-env\"", got)
	}
}
