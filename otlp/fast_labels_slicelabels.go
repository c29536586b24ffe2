//go:build slicelabels || dedupelabels

package otlp

// fastBuilderCopies is false when labels.ScratchBuilder keeps the strings
// added to it: the fast converter then clones them.
const fastBuilderCopies = false
