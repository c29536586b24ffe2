package tenancy_test

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

func TestOTLPOverrides(t *testing.T) {
	d := tenancy.DefaultTenantLimits()
	for _, tc := range []struct {
		name, yaml string
		want       func(*tenancy.OTLPTranslation)
		wantErr    string
	}{
		{"every key", `
overrides:
  acme:
    otel_translation_strategy: NoUTF8EscapingWithSuffixes
    promote_otel_resource_attributes: " a.b , c ,"
    otel_keep_identifying_resource_attributes: true
    otel_convert_histograms_to_nhcb: true
    otel_promote_scope_metadata: true
    otel_label_name_underscore_sanitization: false
    otel_label_name_preserve_multiple_underscores: false
`, func(o *tenancy.OTLPTranslation) {
			*o = tenancy.OTLPTranslation{TranslationStrategy: "NoUTF8EscapingWithSuffixes", PromoteResourceAttributes: tenancy.CSV{"a.b", "c"},
				KeepIdentifyingResourceAttributes: true, ConvertHistogramsToNHCB: true, PromoteScopeMetadata: true}
		}, ""},
		{"a YAML list", "overrides:\n  acme:\n    promote_otel_resource_attributes: [x, y]\n",
			func(o *tenancy.OTLPTranslation) { o.PromoteResourceAttributes = tenancy.CSV{"x", "y"} }, ""},
		{"promote all but", "overrides:\n  acme:\n    otel_promote_all_resource_attributes: true\n    otel_ignore_resource_attributes: host.name\n",
			func(o *tenancy.OTLPTranslation) {
				o.PromoteAllResourceAttributes, o.IgnoreResourceAttributes = true, tenancy.CSV{"host.name"}
			}, ""},
		{"unknown strategy", "overrides:\n  acme:\n    otel_translation_strategy: Legacy\n", nil, `otel_translation_strategy (--otlp.translation-strategy) "Legacy" is not one of`},
		{"promote all and a list", "overrides:\n  acme:\n    otel_promote_all_resource_attributes: true\n    promote_otel_resource_attributes: a\n", nil, "cannot both be set"},
		{"ignore without promote all", "overrides:\n  acme:\n    otel_ignore_resource_attributes: a\n", nil, "needs otel_promote_all_resource_attributes"},
		{"listed twice", "overrides:\n  acme:\n    promote_otel_resource_attributes: a,a\n", nil, `"a" listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tenancy.ParseOverrides([]byte(tc.yaml), d)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			want := d.OTLP
			tc.want(&want)
			require.Equal(t, want, got["acme"].OTLP)
		})
	}
}

func TestOTLPFlags(t *testing.T) {
	var cfg tenancy.LimitsConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--otlp.translation-strategy=NoTranslation", "--otlp.promote-resource-attributes=a,b",
		"--otlp.convert-histograms-to-nhcb", "--otlp.label-name-underscore-sanitization=false"}))
	require.NoError(t, cfg.Validate())
	require.Equal(t, tenancy.OTLPTranslation{TranslationStrategy: "NoTranslation", PromoteResourceAttributes: tenancy.CSV{"a", "b"},
		ConvertHistogramsToNHCB: true, LabelNamePreserveMultipleUnderscores: true}, cfg.OTLP)
	cfg.OTLP.TranslationStrategy = "x"
	require.ErrorContains(t, cfg.Validate(), "otel_translation_strategy")
}
