//go:build !slicelabels && !dedupelabels

package badger

// builderCopies is true when labels.ScratchBuilder.Labels copies the
// strings added to it, as the default (stringlabels) build does: decoded
// names and values can then alias the encoded bytes.
const builderCopies = true
