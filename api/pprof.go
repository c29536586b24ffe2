package api

import (
	"net/http"
	"net/http/pprof"
)

// PprofPath is where PprofHandler is mounted.
const PprofPath = "/debug/pprof/"

// PprofHandler serves the Go runtime's profiles (CPU, heap, goroutines,
// execution traces) under PprofPath, as go tool pprof expects them. They
// are the whole process's, every tenant's requests included, and cost CPU
// while profiling: the router mounts it (Options.Pprof) only when the
// operator asks, for tokens with the operator scope (a tenant's admin is
// not enough), or on the internal listener.
func PprofHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc(PprofPath, pprof.Index)
	m.HandleFunc(PprofPath+"cmdline", pprof.Cmdline)
	m.HandleFunc(PprofPath+"profile", pprof.Profile)
	m.HandleFunc(PprofPath+"symbol", pprof.Symbol)
	m.HandleFunc(PprofPath+"trace", pprof.Trace)
	return m
}
