//go:build slicelabels || dedupelabels

package remotewrite

// builderCopies is false in the slicelabels and dedupelabels builds, whose
// labels.ScratchBuilder keeps the strings added to it: the decoder's
// strings alias a reused buffer and must be cloned first.
const builderCopies = false
