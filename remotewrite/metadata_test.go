package remotewrite

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// A remote write 1.0 series without metadata of its own does not take
// that of a series before it: the names a request's series are looked up
// by live in a buffer each series overwrites, here with a name of the
// same length. A lookup by a name so overwritten finds it only when the
// map's hash bits of the two names agree: 1 in 128, so the test sends
// enough requests (a new map each) to make a miss most unlikely.
func TestWriteV1MetadataNotAliased(t *testing.T) {
	store := openStore(t, nil)
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	now := time.Now().Truncate(time.Millisecond)
	others := []string{ // all of 19 bytes, none with metadata
		"fid_mixed_bytes_sum", "fid_temperature_cel", "fid_other_series_ab", "fid_other_series_cd",
		"fid_other_series_ef", "fid_other_series_gh", "fid_other_series_ij",
	}
	meta := []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "fid_classic_seconds", Help: "Classic."},
		{Type: prompb.MetricMetadata_SUMMARY, MetricFamilyName: "fid_summary_s", Help: "Summary."},
	}
	want := map[string]metadata.Metadata{
		"fid_classic_seconds": {Type: model.MetricTypeGauge, Help: "Classic."},
		"fid_summary_s":       {Type: model.MetricTypeSummary, Help: "Summary."},
	}
	for r := range 100 {
		at := now.Add(time.Duration(r) * time.Millisecond)
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: series("__name__", "fid_classic_seconds"), Samples: samplesAt(at, 1)},
			{Labels: series("__name__", "fid_summary_s_count"), Samples: samplesAt(at, 1)}, // found by a suffix
		}}
		for _, n := range others {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: series("__name__", n), Samples: samplesAt(at, 2)})
		}
		if r%2 == 0 {
			req.Metadata = meta // with the series
		} else { // apart, before them, as Prometheus sends it
			w := post(h, &writer, encode(t, &prompb.WriteRequest{Metadata: meta}), nil)
			require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		}
		w := post(h, &writer, encode(t, req), nil)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}
	require.Equal(t, want, readMetadata(t, store, writer.Tenant))
}

// Prometheus' metadata watcher sends remote write 1.0 metadata in
// requests of its own while its shards send series: many concurrent
// requests, metadata alone, series alone or both, of families whose
// names are all of one length. Every family ends with its own metadata,
// and no family appears that was not sent.
func TestWriteV1MetadataConcurrent(t *testing.T) {
	store := openStore(t, nil)
	h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
	now := time.Now().Truncate(time.Millisecond)

	const families = 24
	name := func(i int) string { return fmt.Sprintf("fid_family_%02d_name", i) } // all 19 bytes
	want := map[string]metadata.Metadata{}
	var sent []prompb.MetricMetadata
	for i := range families {
		if i%3 == 2 {
			continue // series without metadata
		}
		typ, mt := prompb.MetricMetadata_GAUGE, model.MetricTypeGauge
		if i%3 == 1 {
			typ, mt = prompb.MetricMetadata_SUMMARY, model.MetricTypeSummary
		}
		help := fmt.Sprintf("Help of family %d.", i)
		unit := fmt.Sprintf("unit%d", i)
		sent = append(sent, prompb.MetricMetadata{Type: typ, MetricFamilyName: name(i), Help: help, Unit: unit})
		want[name(i)] = metadata.Metadata{Type: mt, Help: help, Unit: unit}
	}
	// The series of a request: every family's, in an order of its own;
	// a summary's as _sum and _count, so that its family is found by a
	// suffix.
	seriesOf := func(r int) []prompb.TimeSeries {
		var ts []prompb.TimeSeries
		for k := range families {
			i := (k*7 + r) % families
			at := now.Add(time.Duration(r) * time.Millisecond)
			if i%3 == 1 {
				ts = append(ts,
					prompb.TimeSeries{Labels: series("__name__", name(i)+"_sum", "job", "a"), Samples: samplesAt(at, float64(r))},
					prompb.TimeSeries{Labels: series("__name__", name(i)+"_count", "job", "a"), Samples: samplesAt(at, float64(r))})
				continue
			}
			ts = append(ts, prompb.TimeSeries{Labels: series("__name__", name(i), "job", "a"), Samples: samplesAt(at, float64(r))})
		}
		return ts
	}

	const requests = 96
	bodies := make([][]byte, requests)
	for r := range requests {
		req := &prompb.WriteRequest{}
		switch r % 3 {
		case 0: // metadata alone, a part of it
			req.Metadata = sent[r%len(sent):]
		case 1: // series alone
			req.Timeseries = seriesOf(r)
		case 2: // both
			req.Timeseries = seriesOf(r)
			req.Metadata = sent[:r%len(sent)+1]
		}
		bodies[r] = encode(t, req)
	}
	var wg sync.WaitGroup
	codes := make([]int, requests)
	for r := range requests {
		wg.Go(func() { codes[r] = post(h, &writer, bodies[r], nil).Code })
	}
	wg.Wait()
	for r, c := range codes {
		require.Equal(t, http.StatusNoContent, c, "request %d", r)
	}
	// Whatever still waits finds its series now.
	w := post(h, &writer, encode(t, &prompb.WriteRequest{Timeseries: seriesOf(requests)}), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, want, readMetadata(t, store, writer.Tenant))
}
