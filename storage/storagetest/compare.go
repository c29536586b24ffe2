package storagetest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

// fmtValue renders f so that two values render alike exactly when the
// suite considers them equal: every bit for non-NaN values (-0 is not 0),
// and the staleness marker apart from every other NaN.
func fmtValue(f float64) string {
	switch {
	case value.IsStaleNaN(f):
		return "StaleNaN"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// render turns ss into one line per sample (or per series without samples),
// in order, for diffing.
func render(ss []series) []string {
	var out []string
	for _, s := range ss {
		if len(s.samples) == 0 {
			out = append(out, s.lset.String()+" (no samples)")
			continue
		}
		prefix := s.lset.String() + " @"
		for _, smp := range s.samples {
			out = append(out, prefix+strconv.FormatInt(smp.T, 10)+" "+fmtValue(smp.F))
		}
	}
	return out
}

// maxDiffLines bounds the lines a failed comparison prints per side.
const maxDiffLines = 30

// requireSameSeries requires got to hold exactly want's series and samples
// in want's order. On failure it prints the missing and unexpected samples,
// one per line, instead of two unreadable dumps.
func requireSameSeries(t testing.TB, want, got []series, what string) {
	t.Helper()
	w, g := render(want), render(got)
	if slices.Equal(w, g) {
		return
	}
	missing, extra := multisetDiff(w, g)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: want %d series / %d lines, got %d series / %d lines", what, len(want), len(w), len(got), len(g))
	if len(missing) == 0 && len(extra) == 0 {
		i := 0
		for i < len(w) && w[i] == g[i] {
			i++
		}
		fmt.Fprintf(&b, "\nsame samples in another order; first difference at line %d:\n  want %s\n  got  %s", i, w[i], g[i])
	}
	writeLines(&b, "missing (want, not got)", "- ", missing)
	writeLines(&b, "unexpected (got, not want)", "+ ", extra)
	require.FailNow(t, "series differ", b.String())
}

func writeLines(b *strings.Builder, title, prefix string, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s: %d", title, len(lines))
	for i, l := range lines {
		if i == maxDiffLines {
			fmt.Fprintf(b, "\n  ... %d more", len(lines)-i)
			break
		}
		b.WriteString("\n  " + prefix + l)
	}
}

// multisetDiff returns the lines of want missing from got and the lines of
// got not in want, counting repeats, each in its original order.
func multisetDiff(want, got []string) (missing, extra []string) {
	count := make(map[string]int, len(got))
	for _, l := range got {
		count[l]++
	}
	for _, l := range want {
		if count[l] > 0 {
			count[l]--
			continue
		}
		missing = append(missing, l)
	}
	for _, l := range slices.Backward(got) {
		if count[l] > 0 {
			count[l]--
			extra = append(extra, l)
		}
	}
	slices.Reverse(extra)
	return missing, extra
}

// merge returns what a store holds after the batches were committed in
// order: one series per label set, sorted by labels, samples sorted by time,
// the value written last winning at a repeated timestamp.
func merge(batches ...[]series) []series {
	byKey := map[string]*series{}
	var order []*series
	for _, batch := range batches {
		for _, s := range batch {
			k := s.lset.String()
			m, ok := byKey[k]
			if !ok {
				m = &series{lset: s.lset}
				byKey[k] = m
				order = append(order, m)
			}
			m.samples = append(m.samples, s.samples...)
		}
	}
	out := make([]series, 0, len(order))
	for _, m := range order {
		// Stable sort keeps write order among equal timestamps; keep the last.
		smp := slices.Clone(m.samples)
		slices.SortStableFunc(smp, func(a, b sample) int { return cmp.Compare(a.T, b.T) })
		var dedup []sample
		for i, s := range smp {
			if i+1 < len(smp) && smp[i+1].T == s.T {
				continue
			}
			dedup = append(dedup, s)
		}
		out = append(out, series{lset: m.lset, samples: dedup})
	}
	sortSeries(out)
	return out
}

// filter returns the part of ss (as merge returns it) a Select over
// [mint, maxt] with ms selects, by Prometheus' matching rules: a missing
// label has the empty value.
func filter(ss []series, mint, maxt int64, ms ...*labels.Matcher) []series {
	var out []series
	for _, s := range ss {
		if !matches(s.lset, ms) {
			continue
		}
		var in []sample
		for _, smp := range s.samples {
			if smp.T >= mint && smp.T <= maxt {
				in = append(in, smp)
			}
		}
		if len(in) > 0 {
			out = append(out, series{lset: s.lset, samples: in})
		}
	}
	return out
}

func matches(l labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

// lsets returns the label sets of ss.
func lsets(ss []series) []labels.Labels {
	out := make([]labels.Labels, len(ss))
	for i, s := range ss {
		out[i] = s.lset
	}
	return out
}
