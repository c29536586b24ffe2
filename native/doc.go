// Package native is Luminate's own JSON API: the batch write of POST
// /api/v1/metrics and the query of POST /api/v1/query with a JSON body
// whose queryType says what is asked (raw, aggregate, latest, metrics,
// dimensions, dimension_values, promql). It decodes that wire format
// (the body's headers, strict JSON objects, times, values: wire.go),
// validates it, and answers in the native envelope; api/openapi.yaml is
// its reference.
//
// It is for clients that speak neither remote write nor PromQL's form
// API: scripts, services and curl. It is not the router: package api
// authenticates, checks scope, admits queries and renders the results and
// errors native's Serve functions return (apierror.Native). It does not
// run PromQL itself: queries are translated to PromQL and run on an Engine
// (*promql.API, handed in by cmd/luminate), and requests to /api/v1/query
// that are not native JSON go to the Prometheus API's own Serve, also
// handed in. It writes through remotewrite's Ingester, so a native write
// obeys every rule of remote write. It does not import api.
package native
