package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 document of the native API: the native write,
// the native query and the health endpoints.
//
//go:embed openapi.yaml
var openAPI []byte

// OpenAPIHandler serves the OpenAPI 3 document of the native API
// (api/openapi.yaml), for GET /api/v1/openapi.yaml. It needs no token.
func OpenAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/yaml")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=3600")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(openAPI)
	})
}
