package api

import (
	"net/http"
	"net/http/pprof"
)

// PprofPath is where PprofHandler is mounted.
const PprofPath = "/debug/pprof/"

// PprofHandler serves the Go runtime's profiles (CPU, heap, goroutines,
// execution traces) under PprofPath, as go tool pprof expects them. It
// exposes internals and costs CPU while profiling: mount it only when the
// operator asks, for admin tokens.
func PprofHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc(PprofPath, pprof.Index)
	m.HandleFunc(PprofPath+"cmdline", pprof.Cmdline)
	m.HandleFunc(PprofPath+"profile", pprof.Profile)
	m.HandleFunc(PprofPath+"symbol", pprof.Symbol)
	m.HandleFunc(PprofPath+"trace", pprof.Trace)
	return m
}
