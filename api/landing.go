package api

// The landing page at GET /: what a newcomer who opens Luminate's address in
// a browser needs to go on (the version, the endpoints, how to mint a
// token, where the documentation is). It is public and names no tenant.

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/prometheus/common/version"
)

// docsURL is where the documentation of the source tree is read.
const docsURL = "https://github.com/luminate-io/luminate/blob/main/"

// landingEndpoint is one line of the landing page.
type landingEndpoint struct {
	Methods, Path, Doc string
}

// landingEndpoints are the endpoints the landing page describes, in order;
// one is shown only when the router serves its Path.
func landingEndpoints() []landingEndpoint {
	return []landingEndpoint{
		{"POST", "/api/v1/write", "Prometheus remote write 1.0 and 2.0 (snappy-compressed protobuf); token scope metrics:write."},
		{"POST", "/api/v1/push", "The same remote write endpoint, under the name other stores use."},
		{"POST", "/api/v1/metrics", "Native JSON write (Content-Type: application/json); metrics:write."},
		{"POST", "/api/v1/read", "Prometheus remote read; metrics:read."},
		{"GET, POST", "/api/v1/query", "PromQL instant query; a POST with a JSON body is the native query (queryType raw, aggregate, latest, ...); metrics:read."},
		{"GET, POST", "/api/v1/query_range", "The Prometheus HTTP API (query_range, series, labels, label/NAME/values, metadata, ...); metrics:read."},
		{"GET, POST", "/prometheus/api/v1/query", "The same Prometheus HTTP API under /prometheus: give Grafana's Prometheus data source the URL /prometheus."},
		{"GET", "/api/v1/openapi.yaml", "OpenAPI document of the native API; no token needed."},
		{"GET", "/-/healthy", "200 while the process runs (alias /healthz); no token needed."},
		{"GET", "/-/ready", "200 once storage serves reads, 503 otherwise (alias /readyz); no token needed."},
		{"GET", "/api/v1/status/health", "ok, degraded or down; the detailed report needs an operator token."},
		{"GET", "/metrics", "Luminate's own metrics; needs a token with the operator scope."},
	}
}

// landingDoc is one document the landing page links to.
type landingDoc struct{ Path, Doc string }

// landingDocs are the documents the landing page links to.
func landingDocs() []landingDoc {
	return []landingDoc{
		{"README.md", "getting started: sending, reading, Grafana, compatibility"},
		{"docs/configuration.md", "every flag (luminate serve --help lists them too)"},
		{"docs/operations.md", "deploying, health and alerts, sizing, backup"},
		{"docs/architecture.md", "the write and read paths, storage layout, durability"},
		{"docs/benchmarks.md", "benchmarks and their numbers"},
	}
}

// landingPage is the template of the landing page.
const landingPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Luminate</title></head>
<body>
<h1>Luminate</h1>
<p>A multi-tenant long-term store for Prometheus metrics. Version {{.Version}} (revision {{.Revision}}).</p>
<h2>Endpoints</h2>
<p>Every data endpoint needs <code>Authorization: Bearer &lt;token&gt;</code>; the token names the tenant.</p>
<ul>
{{range .Endpoints}}<li><code>{{.Methods}} {{.Path}}</code>: {{.Doc}}</li>
{{end}}</ul>
<h2>Mint a token</h2>
<p>With the HMAC secret the server verifies tokens with (<code>make run</code> creates one under its data directory):</p>
<pre>luminate token --auth.jwt.hmac-secret-file=SECRET --tenant=TENANT --scopes=metrics:read,metrics:write --ttl=24h</pre>
<p>It prints the token and nothing else. Send it as <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<h2>Documentation</h2>
<ul>
{{range .Docs}}<li><a href="{{$.DocsURL}}{{.Path}}">{{.Path}}</a>: {{.Doc}}</li>
{{end}}</ul>
</body>
</html>
`

// landingHandler serves the landing page, describing those of
// landingEndpoints whose path is in mounted. The page is rendered once.
func landingHandler(mounted map[string]bool) (http.Handler, error) {
	data := struct {
		Version, Revision, DocsURL string
		Endpoints                  []landingEndpoint
		Docs                       []landingDoc
	}{Version: version.Version, Revision: version.GetRevision(), DocsURL: docsURL, Docs: landingDocs()}
	if data.Version == "" {
		data.Version = "unknown"
	}
	for _, ep := range landingEndpoints() {
		if mounted[ep.Path] {
			data.Endpoints = append(data.Endpoints, ep)
		}
	}
	tmpl, err := template.New("landing").Parse(landingPage)
	if err != nil {
		return nil, fmt.Errorf("api: landing page: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("api: landing page: %w", err)
	}
	page := b.String()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = strings.NewReader(page).WriteTo(w)
		}
	}), nil
}
