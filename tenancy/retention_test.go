package tenancy_test

import (
	"os"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// TestRetentionOverride: the retention key overrides the default (the
// global --storage.retention the caller sets), 0 keeps forever, invalid
// values are refused at reload with the previous retention kept, and a
// reload changes it for the storage at once.
func TestRetentionOverride(t *testing.T) {
	def := tenancy.DefaultTenantLimits()
	def.Retention = model.Duration(90 * 24 * time.Hour)
	env := newLimits(t, def, "overrides:\n  short: {retention: 2h}\n  long: {retention: 1y}\n  forever: {retention: 0s}\n  other: {max_exemplars: 5}\n")
	var p storage.RetentionPolicy = env.l
	require.Equal(t, 2*time.Hour, p.Retention("short"))
	require.Equal(t, 365*24*time.Hour, p.Retention("long"))
	require.Equal(t, time.Duration(0), p.Retention("forever"))
	require.Equal(t, 90*24*time.Hour, p.Retention("other"), "an override without retention keeps the default")
	require.Equal(t, 90*24*time.Hour, p.Retention("nobody"))
	d, over := p.Retentions()
	require.Equal(t, 90*24*time.Hour, d)
	require.Equal(t, 2*time.Hour, over["short"])
	longest, shorter := storage.LongestRetention(p)
	require.Equal(t, time.Duration(0), longest, "a tenant kept forever makes the longest forever")
	require.True(t, shorter)

	for name, content := range map[string]string{
		"negative":       "overrides:\n  short: {retention: -1h}\n",
		"not a duration": "overrides:\n  short: {retention: soon}\n",
		"number":         "overrides:\n  short: {retention: 3600}\n",
	} {
		require.NoError(t, os.WriteFile(env.file, []byte(content), 0o600), name)
		err := env.l.Reload()
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "retention", name)
		require.Equal(t, 2*time.Hour, p.Retention("short"), name)
	}
	require.NoError(t, os.WriteFile(env.file, []byte("overrides:\n  short: {retention: 30d}\n"), 0o600))
	require.NoError(t, env.l.Reload())
	require.Equal(t, 30*24*time.Hour, p.Retention("short"))
	longest, shorter = storage.LongestRetention(p)
	require.Equal(t, 90*24*time.Hour, longest)
	require.True(t, shorter)
}
