package main

import (
	"context"
	"net/http"

	"github.com/luminate-io/luminate/native"
	"github.com/luminate-io/luminate/promql"
	"github.com/luminate-io/luminate/storage"
)

// nativeEngine is promql's engine as the native query's Engine (native
// imports no protocol package).
type nativeEngine struct{ *promql.API }

func (e nativeEngine) Exec(ctx context.Context, t storage.Tenant, req native.ExecRequest) (*native.ExecResult, error) {
	res, err := e.API.Exec(ctx, t.ID(), promql.ExecRequest(req))
	if err != nil {
		return nil, err
	}
	return &native.ExecResult{Value: res.Value, Warnings: res.Warnings, SeriesScanned: res.SeriesScanned,
		SamplesScanned: res.SamplesScanned, IntegerHistogram: res.IntegerHistogram, Close: res.Close}, nil
}

// promQuery serves the Prometheus API's handler as a Serve result, for the
// requests on /api/v1/query that are not native. TEMPORARY: replaced by
// the Serve of promql's /api/v1/query route when h12-promql lands.
type promQuery struct{ http.Handler }

func (p promQuery) Serve(*http.Request, storage.Tenant) (any, error) { return p, nil }

func (p promQuery) Respond(w http.ResponseWriter, r *http.Request) error {
	p.ServeHTTP(w, r)
	return nil
}
