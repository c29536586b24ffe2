package tenancy

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// OTLPTranslation is how a tenant's OTLP metrics are named and labelled:
// Prometheus 3's otlp: configuration block, under the per-tenant keys
// Mimir gives it. The --otlp.* flags set the defaults, Prometheus' own.
type OTLPTranslation struct {
	// TranslationStrategy is one of OTLPTranslationStrategies; empty is
	// the first, the default.
	TranslationStrategy string `yaml:"otel_translation_strategy,omitempty"`
	// PromoteResourceAttributes are the resource attributes made labels
	// of every series of the resource; with PromoteAllResourceAttributes
	// every one is, but IgnoreResourceAttributes.
	PromoteResourceAttributes    CSV  `yaml:"promote_otel_resource_attributes,omitempty"`
	PromoteAllResourceAttributes bool `yaml:"otel_promote_all_resource_attributes,omitempty"`
	IgnoreResourceAttributes     CSV  `yaml:"otel_ignore_resource_attributes,omitempty"`
	// KeepIdentifyingResourceAttributes keeps service.name,
	// service.namespace and service.instance.id on target_info too.
	KeepIdentifyingResourceAttributes bool `yaml:"otel_keep_identifying_resource_attributes,omitempty"`
	// ConvertHistogramsToNHCB stores explicit-bucket histograms as
	// native histograms with custom buckets, not classic series.
	ConvertHistogramsToNHCB bool `yaml:"otel_convert_histograms_to_nhcb,omitempty"`
	// PromoteScopeMetadata adds otel_scope_name, otel_scope_version,
	// otel_scope_schema_url and otel_scope_<attribute> labels.
	PromoteScopeMetadata bool `yaml:"otel_promote_scope_metadata,omitempty"`
	// LabelNameUnderscoreSanitization prefixes "key" to label names that
	// start with one "_"; LabelNamePreserveMultipleUnderscores keeps runs
	// of "_" in label names. Both only with an escaping strategy.
	LabelNameUnderscoreSanitization      bool `yaml:"otel_label_name_underscore_sanitization,omitempty"`
	LabelNamePreserveMultipleUnderscores bool `yaml:"otel_label_name_preserve_multiple_underscores,omitempty"`
}

// OTLPTranslationStrategies are the translation strategies of Prometheus
// 3.16, the default first.
var OTLPTranslationStrategies = []string{
	"UnderscoreEscapingWithSuffixes",
	"UnderscoreEscapingWithoutSuffixes",
	"NoUTF8EscapingWithSuffixes",
	"NoTranslation",
}

// DefaultOTLPTranslation is Prometheus 3.16's DefaultOTLPConfig.
func DefaultOTLPTranslation() OTLPTranslation {
	return OTLPTranslation{
		TranslationStrategy:                  OTLPTranslationStrategies[0],
		LabelNameUnderscoreSanitization:      true,
		LabelNamePreserveMultipleUnderscores: true,
	}
}

func (o *OTLPTranslation) registerFlags(f *flag.FlagSet) {
	d := DefaultOTLPTranslation()
	const k = " Per-tenant override key: "
	f.StringVar(&o.TranslationStrategy, "otlp.translation-strategy", d.TranslationStrategy,
		"How OTLP metric and label names become Prometheus names, as Prometheus' otlp.translation_strategy: "+
			strings.Join(OTLPTranslationStrategies, ", ")+"."+k+"otel_translation_strategy.")
	o.PromoteResourceAttributes = slices.Clone(d.PromoteResourceAttributes)
	f.Var(&o.PromoteResourceAttributes, "otlp.promote-resource-attributes",
		"Comma-separated OTLP resource attributes made labels of every series of their resource (Prometheus' otlp.promote_resource_attributes)."+k+"promote_otel_resource_attributes.")
	f.BoolVar(&o.PromoteAllResourceAttributes, "otlp.promote-all-resource-attributes", d.PromoteAllResourceAttributes,
		"Make every OTLP resource attribute but those of --otlp.ignore-resource-attributes a label (Prometheus' otlp.promote_all_resource_attributes); excludes --otlp.promote-resource-attributes."+k+"otel_promote_all_resource_attributes.")
	f.Var(&o.IgnoreResourceAttributes, "otlp.ignore-resource-attributes",
		"Comma-separated OTLP resource attributes not promoted under --otlp.promote-all-resource-attributes (Prometheus' otlp.ignore_resource_attributes)."+k+"otel_ignore_resource_attributes.")
	f.BoolVar(&o.KeepIdentifyingResourceAttributes, "otlp.keep-identifying-resource-attributes", d.KeepIdentifyingResourceAttributes,
		"Keep service.name, service.namespace and service.instance.id as labels of target_info, beside job and instance (Prometheus' otlp.keep_identifying_resource_attributes)."+k+"otel_keep_identifying_resource_attributes.")
	f.BoolVar(&o.ConvertHistogramsToNHCB, "otlp.convert-histograms-to-nhcb", d.ConvertHistogramsToNHCB,
		"Store OTLP explicit-bucket histograms as native histograms with custom buckets instead of classic _bucket/_sum/_count series (Prometheus' otlp.convert_histograms_to_nhcb)."+k+"otel_convert_histograms_to_nhcb.")
	f.BoolVar(&o.PromoteScopeMetadata, "otlp.promote-scope-metadata", d.PromoteScopeMetadata,
		"Add the instrumentation scope's name, version, schema URL and attributes as otel_scope_* labels (Prometheus' otlp.promote_scope_metadata)."+k+"otel_promote_scope_metadata.")
	f.BoolVar(&o.LabelNameUnderscoreSanitization, "otlp.label-name-underscore-sanitization", d.LabelNameUnderscoreSanitization,
		"With an escaping translation strategy, prefix \"key\" to label names that start with a single underscore (Prometheus' otlp.label_name_underscore_sanitization)."+k+"otel_label_name_underscore_sanitization.")
	f.BoolVar(&o.LabelNamePreserveMultipleUnderscores, "otlp.label-name-preserve-multiple-underscores", d.LabelNamePreserveMultipleUnderscores,
		"With an escaping translation strategy, keep runs of underscores in label names instead of collapsing them (Prometheus' otlp.label_name_preserve_multiple_underscores)."+k+"otel_label_name_preserve_multiple_underscores.")
}

// validate checks o as Prometheus checks its otlp: block.
func (o OTLPTranslation) validate() error {
	var errs []error
	if o.TranslationStrategy != "" && !slices.Contains(OTLPTranslationStrategies, o.TranslationStrategy) {
		errs = append(errs, fmt.Errorf("otel_translation_strategy (--otlp.translation-strategy) %q is not one of %s", o.TranslationStrategy, strings.Join(OTLPTranslationStrategies, ", ")))
	}
	if o.PromoteAllResourceAttributes {
		if len(o.PromoteResourceAttributes) > 0 {
			errs = append(errs, errors.New("otel_promote_all_resource_attributes and promote_otel_resource_attributes cannot both be set"))
		}
	} else if len(o.IgnoreResourceAttributes) > 0 {
		errs = append(errs, errors.New("otel_ignore_resource_attributes needs otel_promote_all_resource_attributes"))
	}
	for _, list := range []CSV{o.PromoteResourceAttributes, o.IgnoreResourceAttributes} {
		seen := map[string]bool{}
		for _, a := range list {
			if seen[a] {
				errs = append(errs, fmt.Errorf("resource attribute %q listed twice", a))
			}
			seen[a] = true
		}
	}
	return errors.Join(errs...)
}

// otlpOverride is the OTLP part of a tenant's entry in the overrides
// file; nil fields keep the default.
type otlpOverride struct {
	TranslationStrategy                  *string `yaml:"otel_translation_strategy,omitempty"`
	PromoteResourceAttributes            *CSV    `yaml:"promote_otel_resource_attributes,omitempty"`
	PromoteAllResourceAttributes         *bool   `yaml:"otel_promote_all_resource_attributes,omitempty"`
	IgnoreResourceAttributes             *CSV    `yaml:"otel_ignore_resource_attributes,omitempty"`
	KeepIdentifyingResourceAttributes    *bool   `yaml:"otel_keep_identifying_resource_attributes,omitempty"`
	ConvertHistogramsToNHCB              *bool   `yaml:"otel_convert_histograms_to_nhcb,omitempty"`
	PromoteScopeMetadata                 *bool   `yaml:"otel_promote_scope_metadata,omitempty"`
	LabelNameUnderscoreSanitization      *bool   `yaml:"otel_label_name_underscore_sanitization,omitempty"`
	LabelNamePreserveMultipleUnderscores *bool   `yaml:"otel_label_name_preserve_multiple_underscores,omitempty"`
}

func (o otlpOverride) apply(t OTLPTranslation) OTLPTranslation {
	set := func(dst *bool, src *bool) {
		if src != nil {
			*dst = *src
		}
	}
	if o.TranslationStrategy != nil {
		t.TranslationStrategy = *o.TranslationStrategy
	}
	if o.PromoteResourceAttributes != nil {
		t.PromoteResourceAttributes = *o.PromoteResourceAttributes
	}
	if o.IgnoreResourceAttributes != nil {
		t.IgnoreResourceAttributes = *o.IgnoreResourceAttributes
	}
	set(&t.PromoteAllResourceAttributes, o.PromoteAllResourceAttributes)
	set(&t.KeepIdentifyingResourceAttributes, o.KeepIdentifyingResourceAttributes)
	set(&t.ConvertHistogramsToNHCB, o.ConvertHistogramsToNHCB)
	set(&t.PromoteScopeMetadata, o.PromoteScopeMetadata)
	set(&t.LabelNameUnderscoreSanitization, o.LabelNameUnderscoreSanitization)
	set(&t.LabelNamePreserveMultipleUnderscores, o.LabelNamePreserveMultipleUnderscores)
	return t
}

// OTLP is the OTLP translation of tenant id.
func (l *Limits) OTLP(id ID) OTLPTranslation { return l.For(id).OTLP }

// CSV is a list of strings written comma-separated, as a flag and in
// YAML (where a YAML list also does, as Mimir's
// promote_otel_resource_attributes takes either). Blanks around the items
// are trimmed and empty items dropped.
type CSV []string

// String joins c with commas.
func (c *CSV) String() string { return strings.Join(*c, ",") }

// Set sets c from a comma-separated list.
func (c *CSV) Set(s string) error {
	*c = splitCSV(s)
	return nil
}

// UnmarshalYAML takes a comma-separated string or a list of strings.
func (c *CSV) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*c = splitCSV(s)
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*c = splitCSV(strings.Join(list, ","))
	return nil
}

// MarshalYAML writes c as a comma-separated string.
func (c CSV) MarshalYAML() (any, error) { return strings.Join(c, ","), nil }

func splitCSV(s string) CSV {
	var out CSV
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
