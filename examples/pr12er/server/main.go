// Command server is the pr12er-shaped example service: a tiny HTTP server that
// tells which build it is, so a deploy can be checked from the outside.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// commit is stamped at build time: go build -ldflags "-X main.commit=<sha>".
var commit = "unknown"

// buildCommit is the commit this process reports: $COMMIT when set (a Deployment can
// inject it), else the value stamped by -ldflags.
func buildCommit() string {
	if c := os.Getenv("COMMIT"); c != "" {
		return c
	}
	return commit
}

func newMux(version string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, version)
	})
	return mux
}

func main() {
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	version := buildCommit()
	srv := &http.Server{Addr: addr, Handler: newMux(version), ReadHeaderTimeout: 5 * time.Second}

	// As PID 1 in a container the process gets no default SIGTERM handling: without
	// this, every rollout would wait out the pod's whole termination grace period.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()

	log.Printf("pr12er server %s listening on %s", version, addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
