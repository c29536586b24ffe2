package main

import (
	"context"

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
