package remotewrite

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

func lbls(kv ...string) []Label {
	ls := make([]Label, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

func TestValidatorSeries(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxLabelsPerSeries = 4
	cfg.MaxLabelNameLength = 10
	cfg.MaxLabelValueLength = 20
	v := NewValidator(cfg)

	for _, tc := range []struct {
		name    string
		in      []Label
		want    []Label // when valid
		reason  Reason  // when rejected
		message string  // part of the rejection message
	}{
		{name: "valid legacy names", in: lbls("__name__", "up", "job", "a"), want: lbls("__name__", "up", "job", "a")},
		{name: "sorted when the sender did not", in: lbls("job", "a", "__name__", "up", "instance", "b"),
			want: lbls("__name__", "up", "instance", "b", "job", "a")},
		{name: "empty values dropped", in: lbls("__name__", "up", "empty", "", "job", "a"), want: lbls("__name__", "up", "job", "a")},
		{name: "empty values do not count towards the label limit",
			in:   lbls("__name__", "up", "a", "1", "b", "2", "c", "3", "d", "", "e", ""),
			want: lbls("__name__", "up", "a", "1", "b", "2", "c", "3")},
		{name: "UTF-8 metric and label names", in: lbls("__name__", "http.requests", "région", "ü"),
			want: lbls("__name__", "http.requests", "région", "ü")},
		{name: "missing metric name", in: lbls("job", "a"), reason: ReasonMissingMetricName, message: "no metric name"},
		{name: "empty metric name is missing", in: lbls("__name__", "", "job", "a"), reason: ReasonMissingMetricName},
		{name: "no labels at all", in: nil, reason: ReasonMissingMetricName},
		{name: "metric name not UTF-8", in: lbls("__name__", "bad\xff"), reason: ReasonInvalidMetricName, message: `"bad\xff"`},
		{name: "label name not UTF-8", in: lbls("__name__", "up", "\xfejob", "a"), reason: ReasonInvalidLabelName},
		{name: "label value not UTF-8", in: lbls("__name__", "up", "job", "\xc3\x28"), reason: ReasonInvalidLabelValue, message: "job"},
		{name: "empty label name", in: lbls("__name__", "up", "", "a"), reason: ReasonInvalidLabelName},
		{name: "duplicate label names", in: lbls("__name__", "up", "job", "a", "job", "b"), reason: ReasonDuplicateLabel, message: `"job"`},
		{name: "duplicate metric name", in: lbls("__name__", "up", "__name__", "down"), reason: ReasonDuplicateLabel},
		{name: "too many labels", in: lbls("__name__", "up", "a", "1", "b", "2", "c", "3", "d", "4"),
			reason: ReasonTooManyLabels, message: "--ingest.max-labels-per-series"},
		{name: "label name too long", in: lbls("__name__", "up", "abcdefghijk", "1"),
			reason: ReasonLabelNameTooLong, message: "--ingest.max-label-name-length"},
		{name: "label value too long", in: lbls("__name__", "up", "a", strings.Repeat("x", 21)),
			reason: ReasonLabelValueTooLong, message: "--ingest.max-label-value-length"},
		{name: "metric name too long", in: lbls("__name__", strings.Repeat("x", 21)), reason: ReasonLabelValueTooLong},
		{name: "tenant label", in: lbls("__name__", "up", "_tenant_id", "other"), reason: ReasonTenantLabel, message: "reserved"},
		{name: "tenant label with an empty value", in: lbls("__name__", "up", "_tenant_id", ""), reason: ReasonTenantLabel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			valid := true
			for _, l := range tc.in {
				valid = valid && utf8.ValidString(l.Name) && utf8.ValidString(l.Value)
			}
			if valid { // the decoder's check of the symbols spares the Validator its own: the same answer
				got, err := v.series(slices.Clone(tc.in), true)
				want, wantErr := v.Series(slices.Clone(tc.in))
				require.Equal(t, want, got)
				require.Equal(t, wantErr, err)
			}
			got, err := v.Series(tc.in)
			if tc.reason == "" {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			var rej *Rejection
			require.ErrorAs(t, err, &rej)
			require.Equal(t, tc.reason, rej.Reason)
			require.Contains(t, err.Error(), tc.message)
			require.True(t, strings.HasPrefix(err.Error(), "series {"), err.Error())
		})
	}
}

func TestValidatorTenantLabelIsStorageError(t *testing.T) {
	_, err := NewValidator(DefaultConfig()).Series(lbls("__name__", "up", "_tenant_id", "x"))
	require.ErrorIs(t, err, storage.ErrTenantLabel)
	require.Equal(t, 400, apierror.Classify(err).Status)
}

func TestValidatorNoLimits(t *testing.T) {
	v := NewValidator(Config{})
	var ls []Label
	ls = append(ls, Label{"__name__", strings.Repeat("m", 5000)})
	for i := range 100 {
		ls = append(ls, Label{strings.Repeat("n", 2000) + string(rune('a'+i%26)) + strings.Repeat("z", i), strings.Repeat("v", 5000)})
	}
	_, err := v.Series(ls)
	require.NoError(t, err)

	w := v.Window(time.Now())
	require.NoError(t, w.Check(ls, 1<<62))
	require.NoError(t, w.Check(ls, -1<<62))
}

func TestWindow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Retention = 24 * time.Hour
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	w := NewValidator(cfg).Window(now)
	ls := lbls("__name__", "up")
	for _, tc := range []struct {
		name   string
		t      time.Time
		reason Reason
	}{
		{"now", now, ""},
		{"at the future bound", now.Add(10 * time.Minute), ""},
		{"past the future bound", now.Add(10*time.Minute + time.Millisecond), ReasonTooFarInFuture},
		{"at the retention bound", now.Add(-24 * time.Hour), ""},
		{"older than retention", now.Add(-24*time.Hour - time.Millisecond), ReasonTooOld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := w.Check(ls, tc.t.UnixMilli())
			if tc.reason == "" {
				require.NoError(t, err)
				return
			}
			var rej *Rejection
			require.True(t, errors.As(err, &rej))
			require.Equal(t, tc.reason, rej.Reason)
			require.Contains(t, err.Error(), `{__name__="up"}`)
		})
	}
}

func TestFormatSeriesShortens(t *testing.T) {
	ls := []Label{{"__name__", strings.Repeat("x", 10000)}, {"a.b", "c"}}
	for i := range 100 {
		ls = append(ls, Label{"l" + strings.Repeat("x", i), "v"})
	}
	s := FormatSeries(ls)
	require.Less(t, len(s), 3000)
	require.Contains(t, s, `"a.b"="c"`)
	require.Contains(t, s, "(10000 bytes)")
	require.Contains(t, s, "72 more")
}

// byTenant is a storage.RetentionPolicy of fixed per-tenant retentions.
type byTenant map[tenancy.ID]time.Duration

func (b byTenant) Retention(id tenancy.ID) time.Duration {
	if r, ok := b[id]; ok {
		return r
	}
	return b[""]
}

func (b byTenant) Retentions() (time.Duration, map[tenancy.ID]time.Duration) { return b[""], b }

// TestWindowForTenant: the oldest sample accepted follows the tenant's own
// retention (the overrides file's retention key), longer or shorter than
// the global one.
func TestWindowForTenant(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Retention = 24 * time.Hour
	cfg.RetentionPolicy = byTenant{"": 24 * time.Hour, "archive": 0, "trial": time.Hour}
	v := NewValidator(cfg)
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ls := lbls("__name__", "up")
	twoDays := now.Add(-48 * time.Hour).UnixMilli()
	require.Error(t, v.WindowFor("other", now).Check(ls, twoDays), "the default retention, 24h")
	require.NoError(t, v.WindowFor("archive", now).Check(ls, twoDays), "kept forever: any age")
	require.NoError(t, v.WindowFor("trial", now).Check(ls, now.Add(-time.Hour).UnixMilli()))
	err := v.WindowFor("trial", now).Check(ls, now.Add(-time.Hour-time.Millisecond).UnixMilli())
	var rej *Rejection
	require.True(t, errors.As(err, &rej), "trial keeps an hour: %v", err)
	require.Equal(t, ReasonTooOld, rej.Reason)
	require.Contains(t, err.Error(), "1h")
}
