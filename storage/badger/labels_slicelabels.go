//go:build slicelabels || dedupelabels

package badger

// builderCopies is false in the slicelabels and dedupelabels builds, whose
// labels keep the strings added to a labels.ScratchBuilder: decoded names
// and values are copied.
const builderCopies = false
