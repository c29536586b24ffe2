package otlp

import (
	"time"

	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"

	"github.com/luminate-io/luminate/tenancy"
)

// Settings returns the converter's settings for translation o, as
// Prometheus 3.16's OTLP receiver builds them from its otlp: block
// (storage/remote/write_otlp_handler.go), with the query lookback delta
// lookback (which spaces target_info samples). Delta temporality is never
// allowed: see the package documentation.
func Settings(o tenancy.OTLPTranslation, lookback time.Duration) prometheusremotewrite.Settings {
	strategy := otlptranslator.TranslationStrategyOption(o.TranslationStrategy)
	if strategy == "" {
		strategy = otlptranslator.UnderscoreEscapingWithSuffixes
	}
	return prometheusremotewrite.Settings{
		AddMetricSuffixes: strategy.ShouldAddSuffixes(),
		AllowUTF8:         !strategy.ShouldEscape(),
		PromoteResourceAttributes: prometheusremotewrite.NewPromoteResourceAttributes(config.OTLPConfig{
			PromoteAllResourceAttributes: o.PromoteAllResourceAttributes,
			PromoteResourceAttributes:    o.PromoteResourceAttributes,
			IgnoreResourceAttributes:     o.IgnoreResourceAttributes,
		}),
		KeepIdentifyingResourceAttributes:    o.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:              o.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:                 o.PromoteScopeMetadata,
		AllowDeltaTemporality:                false,
		LookbackDelta:                        lookback,
		LabelNameUnderscoreSanitization:      o.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: o.LabelNamePreserveMultipleUnderscores,
	}
}
